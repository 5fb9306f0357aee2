"""lm-eval's OpenAI-compatible models, with one fix for sampled tasks.

lm-eval sends the same ``seed`` with every request.  A server that honours it (vLLM does) then
answers the ``--samples`` draws of an AIME/AMC problem identically, and pass@1 over k draws
silently becomes one draw.  Here sampled requests get seeds seed, seed+1, ... in request order:
distinct draws, still reproducible on a seed-honouring server.  Greedy requests are unchanged.
"""

from __future__ import annotations

import itertools

from lm_eval.api.registry import register_model
from lm_eval.models.openai_completions import LocalChatCompletion, LocalCompletionsAPI


class _DistinctSampleSeeds:
    _draws: itertools.count

    def _create_payload(self, messages, *, generate=False, gen_kwargs=None, seed=1234, **kwargs):
        if generate and gen_kwargs and float(gen_kwargs.get("temperature", 0) or 0) > 0:
            if not hasattr(self, "_draws"):
                self._draws = itertools.count()
            seed = seed + next(self._draws)
        return super()._create_payload(messages, generate=generate, gen_kwargs=gen_kwargs, seed=seed, **kwargs)


@register_model("tpt-local-completions")
class SeededLocalCompletions(_DistinctSampleSeeds, LocalCompletionsAPI):
    pass


@register_model("tpt-local-chat-completions")
class SeededLocalChatCompletions(_DistinctSampleSeeds, LocalChatCompletion):
    pass
