"""The compiler-aware NAS plugin (thin): BERT-like encoder candidates, priced by the cost model.

    from polyfuse import nas
    result = nas.search(nas.get_space("bert"), target="android-gpu", profile="sd865", budget_ms=20, trials=200)
    result.best().config, result.pareto()
"""
from .builder import EncoderConfig, build_encoder, example_feeds  # noqa: F401
from .search import Candidate, Result, param_count_quality, search  # noqa: F401
from .space import SPACES, LatencyModel, Space, get_space  # noqa: F401
