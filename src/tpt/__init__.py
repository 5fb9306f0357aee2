"""tpt: Thinking-Augmented Pre-Training (Wang et al., 2025, arXiv 2509.20186)."""

__version__ = "0.1.0"
