"""The math itself: problem families, the calculator, worked and decomposed solutions."""
