"""QFlow example project: a logistic-regression classifier."""
