"""Agreement between rankers, computed once for every consumer (dashboards, API, exports, the screening gate).

* ``table``: stored rankings loaded as numpy columns;
* ``pairs``: every same-task pair of rankings scored, summed per ranking (units) or per task;
* ``pooling``: units pooled into per-labeler figures, intervals, the rolling hidden-gold window;
* ``flags``: flag agreement with researchers;
* ``units`` and ``aggregates``: the same figures per ranking, task, labeler, day and matrix cell, stored and kept
  up to date on every change of a ranking, so that the views read them instead of every ranking;
* ``report``: the dashboards' and the API's views.
"""

from app.services.agreement import aggregates as aggregates  # registers the session hooks that keep them
