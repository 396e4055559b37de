"""Golden-set evaluation: metrics with bootstrap CIs, threshold selection, teacher and student gates, report."""
