"""The trajectory viewer: a query's recursion tree as one self-contained HTML page.

``rlm-mcp trace FILE --html OUT`` writes it; ``serve --transport http`` serves it at
``/trajectories/`` (:mod:`rlm_mcp.viewer.web`).
"""

from rlm_mcp.viewer.render import CSP, render_html
from rlm_mcp.viewer.tree import Trace, build_tree

__all__ = ["CSP", "Trace", "build_tree", "render_html"]
