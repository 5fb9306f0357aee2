"""Prompt formats (doc -> text / target) and fixed few-shot sets, called by the task YAMLs.

Formats follow lm-evaluation-harness's own tasks so that numbers stay comparable:
GSM8K "Question: ... Answer:", MATH in Minerva's "Problem: ... Solution:" with its four fixed
exemplars, MMLU-Pro's "Question: ... Options: ... Answer:".
"""

from __future__ import annotations

import re

from tpt.evaluate.scoring import LETTERS, math_gold

# --------------------------------------------------------------------------- GSM8K

_CALCULATOR = re.compile(r"<<[^>]*>>")


def gsm8k_doc_to_text(doc: dict) -> str:
    return f"Question: {doc['question']}\nAnswer:"


def gsm8k_doc_to_target(doc: dict) -> str:
    """The worked solution ending in '#### N', without the '<<48/2=24>>' calculator annotations."""
    return _CALCULATOR.sub("", doc["answer"])


# --------------------------------------------------------------------------- MATH / MATH-500 (Minerva)


def math_doc_to_text(doc: dict) -> str:
    return "Problem:\n" + doc["problem"] + "\n\nSolution:"


def math_doc_to_target(doc: dict) -> str:
    """Few-shot exemplars show their whole solution; a test document's target is its answer."""
    return doc["solution"] if doc.get("few_shot") else math_gold(doc)


def minerva_fewshot_samples() -> list[dict]:
    """The four exemplars of Minerva (Lewkowycz et al. 2022), as in lm-eval's minerva_math."""
    tail = "\nFinal Answer: The final answer is ${}$. I hope it is correct."
    return [
        {
            "problem": "Find the domain of the expression  $\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.",
            "solution": "The expressions inside each square root must be non-negative. Therefore, $x-2 \\ge 0$, so $x\\ge2$, and $5 - x \\ge 0$, so $x \\le 5$. Also, the denominator cannot be equal to zero, so $5-x>0$, which gives $x<5$. Therefore, the domain of the expression is $\\boxed{[2,5)}$."
            + tail.format("[2,5)"),
            "few_shot": "1",
        },
        {
            "problem": "If $\\det \\mathbf{A} = 2$ and $\\det \\mathbf{B} = 12,$ then find $\\det (\\mathbf{A} \\mathbf{B}).$",
            "solution": "We have that $\\det (\\mathbf{A} \\mathbf{B}) = (\\det \\mathbf{A})(\\det \\mathbf{B}) = (2)(12) = \\boxed{24}.$"
            + tail.format("24"),
            "few_shot": "1",
        },
        {
            "problem": "Terrell usually lifts two 20-pound weights 12 times. If he uses two 15-pound weights instead, how many times must Terrell lift them in order to lift the same total weight?",
            "solution": "If Terrell lifts two 20-pound weights 12 times, he lifts a total of $2\\cdot 12\\cdot20=480$ pounds of weight.  If he lifts two 15-pound weights instead for $n$ times, he will lift a total of $2\\cdot15\\cdot n=30n$ pounds of weight.  Equating this to 480 pounds, we can solve for $n$:\n\\begin{align*}\n30n&=480\\\\\n\\Rightarrow\\qquad n&=480/30=\\boxed{16}\n\\end{align*}"
            + tail.format("16"),
            "few_shot": "1",
        },
        {
            "problem": "If the system of equations\n\n\\begin{align*}\n6x-4y&=a,\\\\\n6y-9x &=b.\n\\end{align*}has a solution $(x, y)$ where $x$ and $y$ are both nonzero,\nfind $\\frac{a}{b},$ assuming $b$ is nonzero.",
            "solution": "If we multiply the first equation by $-\\frac{3}{2}$, we obtain\n\n$$6y-9x=-\\frac{3}{2}a.$$Since we also know that $6y-9x=b$, we have\n\n$$-\\frac{3}{2}a=b\\Rightarrow\\frac{a}{b}=\\boxed{-\\frac{2}{3}}.$$"
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
    options = "".join(f"{LETTERS[i]}. {option.strip()}\n" for i, option in enumerate(doc["options"][: len(LETTERS)]))
    return f"Question:\n{doc['question'].strip()}\nOptions:\n{options}Answer:"


def mmlu_pro_doc_to_target(doc: dict) -> str:
    # No chain-of-thought exemplars exist locally (see docs/eval.md): shots end in the answer line.
    return f"The answer is ({doc['answer']})."


def mmlu_pro_category_filter(category: str):
    """process_docs for one category; few-shot examples are drawn from the same filtered pool."""

    def process_docs(dataset):
        return dataset.filter(lambda row: row["category"] == category)

    return process_docs
