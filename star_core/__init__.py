"""star: a workbench for STaR (Self-Taught Reasoner, Zelikman et al. 2022).

Importing ``star_core`` (and ``star_core.store`` / ``star_core.queries`` /
``star_core.tasks``) never imports torch; the dashboard relies on that.
"""

__version__ = "0.1.0"
