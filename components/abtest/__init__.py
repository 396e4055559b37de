"""A/B promotion and analysis: bucketing, power, lift with CIs, CUPED, SRM, CBPS balance, simulator, report."""
