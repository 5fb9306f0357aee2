"""The shared worker pool and progress reporter: same results with and without workers, no bar
when the stage is quiet or stderr is not a terminal."""

from __future__ import annotations

import os

from tpt.parallel import fork_map
from tpt.progress import NoProgress, Throughput, progress_bar


def _pid_and_square(x: int) -> tuple[int, int]:
    return os.getpid(), x * x


def test_fork_map_keeps_job_order_and_uses_other_processes():
    jobs = [(x,) for x in range(6)]
    forked = list(fork_map(_pid_and_square, jobs, workers=2))
    assert [sq for _, sq in forked] == [x * x for x in range(6)]
    assert all(pid != os.getpid() for pid, _ in forked)
    inline = list(fork_map(_pid_and_square, jobs, workers=1))
    assert [sq for _, sq in inline] == [x * x for x in range(6)] and {pid for pid, _ in inline} == {os.getpid()}


def test_quiet_stage_gets_no_bar_and_non_tty_gets_a_disabled_one():
    assert isinstance(progress_bar(10, "x", enabled=False), NoProgress)
    bar = progress_bar(10, "x")  # pytest captures stderr: not a terminal
    assert bar.disable
    bar.close()


def test_throughput_counts_and_updates_any_bar():
    class Recorder(NoProgress):
        done, postfix = 0, ""

        def update(self, n: int = 1) -> None:
            self.done += n

        def set_postfix_str(self, text: str, refresh: bool = True) -> None:
            self.postfix = text

    bar = Recorder()
    rate = Throughput(bar)
    rate.add(2, 100)
    rate.add(1, 50)
    assert bar.done == 3 and rate.count == 150 and bar.postfix.endswith("tok/s")


def test_spawn_map_and_process_pool_run_in_fresh_processes():
    from tpt.parallel import process_pool, spawn_map

    jobs = [(i,) for i in range(4)]
    spawned = list(spawn_map(_pid_and_square, jobs, workers=2))
    assert [sq for _, sq in spawned] == [0, 1, 4, 9]
    assert all(pid != os.getpid() for pid, _ in spawned)
    with process_pool(2, "spawn") as pool:
        assert pool.submit(_pid_and_square, 3).result()[1] == 9
