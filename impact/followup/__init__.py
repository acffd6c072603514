"""The follow-up study the 2015 report calls for, generated from the panel's evidence.

- :func:`design` (``study_design.py``): what to record, how many departments and years give the
  target power, which departments to follow, the pre-registered estimators and diagnostics, and
  the minimum detectable effect of the 2015 design beside the follow-up's; a
  :class:`FollowupDesign` with ``.markdown``, ``.latex`` and ``.write(folder)``
  (``render.py``).
"""

from __future__ import annotations

from impact.followup.study_design import TOOL_GROUPS, FollowupDesign, design

__all__ = ["TOOL_GROUPS", "FollowupDesign", "design"]
