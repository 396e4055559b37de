"""Silverset stages: one sub-package per stage, plain-Python cores plus thin KFP components."""
