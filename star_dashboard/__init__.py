"""The Streamlit dashboard's helpers: ``data`` (every read of a run store the pages make, cached where it pays),
``ui`` (Streamlit widgets, the run picker, safe text), ``review`` (annotations, keyboard moves, downloads),
``control`` (process-control buttons) and the rest, one job each. The pages live in ``app_pages/`` and the entry
point is ``app.py``. The engine (``star_core``) never imports Streamlit; this package reads the run store only
through ``data`` (on ``star_core.queries``) and never imports torch.
"""
