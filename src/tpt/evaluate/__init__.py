"""tpt eval: the paper's benchmarks through lm-evaluation-harness, offline (docs/eval.md)."""

from tpt.evaluate.config import EvalConfig
from tpt.evaluate.report import compare
from tpt.evaluate.runner import evaluate

__all__ = ["EvalConfig", "compare", "evaluate"]
