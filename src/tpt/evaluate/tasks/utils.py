"""The functions the task YAMLs name with ``!function tpt.evaluate.tasks.utils.<name>``.

lm-eval resolves a dotted ``!function`` path by a plain import when no ``utils.py`` sits next to
the YAML, so the rendered YAMLs (written per run under the output folder) call straight into
tpt's modules; this one holds what needs building per category, and the few-shot sampler.
"""

from __future__ import annotations

from lm_eval.api.samplers import SAMPLER_REGISTRY, ContextSampler

from tpt.evaluate.catalog import MMLU_PRO_CATEGORIES, slug
from tpt.evaluate.prompts import mmlu_pro_category_filter

# One named process_docs per MMLU-Pro category (a YAML can only name a function, not call one):
# mmlu_pro_process_biology, ..., mmlu_pro_process_computer_science.
for _category in MMLU_PRO_CATEGORIES:
    globals()[f"mmlu_pro_process_{slug(_category)}"] = mmlu_pro_category_filter(_category)


class FirstNExcludingSampler(ContextSampler):
    """The first n documents of the pool, skipping the document under test.

    lm-eval's ``first_n`` does the same but materialises the whole pool for every test document
    (a few minutes on MMLU-Pro's 12k questions); only the first n + 1 can ever be needed.
    """

    def sample(self, n: int, eval_doc=None, df=None, **kwargs):
        if df:
            self.df = df
        head = getattr(self, "_head", None)
        if head is None or len(head) < n + 1:
            head = self._head = [self.df[i] for i in range(min(n + 1, len(self.df)))]
        pool = [doc for doc in head if doc != eval_doc][:n]
        if len(pool) < n:
            raise ValueError(f"few-shot pool has {len(head)} documents; {n} shots requested")
        return pool


SAMPLER_REGISTRY.setdefault("tpt_first_n_excluding", FirstNExcludingSampler)

__all__ = [f"mmlu_pro_process_{slug(c)}" for c in MMLU_PRO_CATEGORIES]  # what the YAMLs name
