"""Agreement between rankers, computed once for every consumer (dashboards, API, exports, the screening gate).

* ``table``: stored rankings loaded as numpy columns;
* ``pairs``: every same-task pair of rankings scored, summed per ranking (units) or per task;
* ``pooling``: units pooled into per-labeler figures, intervals, the rolling hidden-gold window;
* ``flags``: flag agreement with researchers;
* ``report``: the dashboards' and the API's views.
"""
