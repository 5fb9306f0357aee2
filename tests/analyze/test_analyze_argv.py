from tpt.analyze.argv import merge_list_flags


def test_repeated_and_comma_separated_list_flags_merge(tmp_path):
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    argv = ["--by", "domain,audience", str(run), "--by", "reasoning_intensity", "--order", "audience=a,b", "--json"]
    merged = merge_list_flags(argv, {"--by", "--order"}, split_commas={"--by"})
    # the run folder after --by stays positional; --order keeps its commas
    assert merged == [
        str(run),
        "--json",
        "--by",
        "domain",
        "--by",
        "audience",
        "--by",
        "reasoning_intensity",
        "--order",
        "audience=a,b",
    ]
    assert merge_list_flags(["--x=0.1,0.2"], {"--x"}, {"--x"}) == ["--x", "0.1", "--x", "0.2"]
