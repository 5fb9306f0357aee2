"""Prompt pieces the task YAMLs name with ``!function``: doc -> text, fixed few-shot sets.

Each copies lm-eval's own task (lm-eval 0.4.13) character for character unless docs/eval.md lists a
difference; tests/eval/test_eval_fidelity.py renders both and compares them.
"""

from __future__ import annotations

import re

from tpt.evaluate.scoring import LETTERS

# --------------------------------------------------------------------------- GSM8K (gsm8k_cot)


def gsm8k_cot_exemplars() -> list[dict]:
    """The eight chain-of-thought exemplars of Wei et al. (2022), as lm-eval's gsm8k_cot lists them."""
    shots = [
        {
            "question": "There are 15 trees in the grove. Grove workers will plant trees in the grove today. After "
            "they are done, there will be 21 trees. How many trees did the grove workers plant today?",
            "target": "There are 15 trees originally. Then there were 21 trees after some more were planted. So "
            "there must have been 21 - 15 = 6. The answer is 6.",
        },
        {
            "question": "If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the "
            "parking lot?",
            "target": "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5.",
        },
        {
            "question": "Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have "
            "left in total?",
            "target": "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. "
            "After eating 35, they had 74 - 35 = 39. The answer is 39.",
        },
        {
            "question": "Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many "
            "lollipops did Jason give to Denny?",
            "target": "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny "
            "20 - 12 = 8. The answer is 8.",
        },
        {
            "question": "Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many "
            "toys does he have now?",
            "target": "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more "
            "toys. 5 + 4 = 9. The answer is 9.",
        },
        {
            "question": "There were nine computers in the server room. Five more computers were installed each day, "
            "from monday to thursday. How many computers are now in the server room?",
            "target": "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 "
            "= 20 computers were added. 9 + 20 is 29. The answer is 29.",
        },
        {
            "question": "Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. "
            "How many golf balls did he have at the end of wednesday?",
            "target": "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After "
            "losing 2 more, he had 35 - 2 = 33 golf balls. The answer is 33.",
        },
        {
            "question": "Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
            "target": "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 "
            "- 15 dollars left. 23 - 15 is 8. The answer is 8.",
        },
    ]
    return shots


# --------------------------------------------------------------------------- BoolQ

_BOOLQ_QUERY = re.compile(r"Passage: (?P<passage>.*)\nQuestion: (?P<question>[^\n]*)\?", re.DOTALL)


def boolq_split_query(doc: dict) -> dict:
    """llm-foundry's {query: "Passage: P\nQuestion: Q?", gold} -> SuperGLUE's {passage, question, label}."""
    match = _BOOLQ_QUERY.fullmatch(doc["query"])
    if match is None:
        raise ValueError(f"BoolQ query is not 'Passage: ...\\nQuestion: ...?': {doc['query'][:80]!r}")
    return {"passage": match["passage"], "question": match["question"], "label": doc["gold"]}


def boolq_process_docs(dataset):
    return dataset.map(boolq_split_query, remove_columns=["query", "choices", "gold"])


# --------------------------------------------------------------------------- MATH / MATH-500 (Minerva)


def math_doc_to_text(doc: dict) -> str:
    return "Problem:\n" + doc["problem"] + "\n\nSolution:"


def minerva_fewshot_samples() -> list[dict]:
    """The four exemplars of Minerva (Lewkowycz et al. 2022), as in lm-eval's minerva_math."""
    tail = "\nFinal Answer: The final answer is ${}$. I hope it is correct."
    return [
        {
            "problem": "Find the domain of the expression  $\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.",
            "solution": "The expressions inside each square root must be non-negative. Therefore, $x-2 \\ge 0$, so "
            "$x\\ge2$, and $5 - x \\ge 0$, so $x \\le 5$. Also, the denominator cannot be equal to zero, "
            "so $5-x>0$, which gives $x<5$. Therefore, the domain of the expression is $\\boxed{[2,5)}$."
            + tail.format("[2,5)"),
            "few_shot": "1",
        },
        {
            "problem": "If $\\det \\mathbf{A} = 2$ and $\\det \\mathbf{B} = 12,$ then find $\\det (\\mathbf{A} "
            "\\mathbf{B}).$",
            "solution": "We have that $\\det (\\mathbf{A} \\mathbf{B}) = (\\det \\mathbf{A})(\\det \\mathbf{B}) = "
            "(2)(12) = \\boxed{24}.$" + tail.format("24"),
            "few_shot": "1",
        },
        {
            "problem": "Terrell usually lifts two 20-pound weights 12 times. If he uses two 15-pound weights "
            "instead, how many times must Terrell lift them in order to lift the same total weight?",
            "solution": "If Terrell lifts two 20-pound weights 12 times, he lifts a total of $2\\cdot "
            "12\\cdot20=480$ pounds of weight.  If he lifts two 15-pound weights instead for $n$ times, "
            "he will lift a total of $2\\cdot15\\cdot n=30n$ pounds of weight.  Equating this to 480 "
            "pounds, we can solve for $n$:\n\\begin{align*}\n30n&=480\\\\\n\\Rightarrow\\qquad "
            "n&=480/30=\\boxed{16}\n\\end{align*}" + tail.format("16"),
            "few_shot": "1",
        },
        {
            "problem": "If the system of equations\n\n\\begin{align*}\n6x-4y&=a,\\\\\n6y-9x &=b.\n\\end{align*}has a "
            "solution $(x, y)$ where $x$ and $y$ are both nonzero,\nfind $\\frac{a}{b},$ assuming $b$ is "
            "nonzero.",
            "solution": "If we multiply the first equation by $-\\frac{3}{2}$, we "
            "obtain\n\n$$6y-9x=-\\frac{3}{2}a.$$Since we also know that $6y-9x=b$, we "
            "have\n\n$$-\\frac{3}{2}a=b\\Rightarrow\\frac{a}{b}=\\boxed{-\\frac{2}{3}}.$$"
            + tail.format("-\\frac{2}{3}"),
            "few_shot": "1",
        },
    ]


# --------------------------------------------------------------------------- AIME / AMC (zero-shot, generative)


def competition_doc_to_text(doc: dict) -> str:
    return (
        "Problem:\n" + doc["problem"] + "\n\nPlease reason step by step, and put your final answer "
        "within \\boxed{}.\n\nSolution:"
    )


# --------------------------------------------------------------------------- MMLU-Pro


def mmlu_pro_doc_to_text(doc: dict) -> str:
    """lm-eval's format_cot_example(including_answer=False); the question is not stripped there either."""
    options = "".join(f"{LETTERS[i]}. {option.strip()}\n" for i, option in enumerate(doc["options"][: len(LETTERS)]))
    return f"Question:\n{doc['question']}\nOptions:\n{options}Answer: Let's think step by step."


def mmlu_pro_fewshot_target(doc: dict) -> str:
    """Offline stand-in for the validation split's chain of thought (not available here): the answer alone."""
    return f"The answer is ({doc['answer']})."


def mmlu_pro_category_filter(category: str):
    """process_docs for one category; few-shot examples are drawn from the same filtered pool."""

    def process_docs(dataset):
        return dataset.filter(lambda row: row["category"] == category)

    return process_docs
