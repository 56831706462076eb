"""Listeners of closed windows: the console table, the results history, the alert stage."""
