"""The Streamlit dashboard's helpers: ``ui`` (Streamlit widgets, the run picker, cached queries, safe text,
process-control buttons) and ``tour`` (the teaching tour's reads). The pages live in ``app_pages/`` and the
entry point is ``app.py``. The engine (``star_core``) never imports Streamlit; this package reads the run store
only through ``star_core.queries`` and never imports torch.
"""
