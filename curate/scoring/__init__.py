"""Deita scoring internals: prompts and score tokens, logit backends, the text fallback, validity figures.

The stage itself (`curate score`) is `curate.stages.score.score`.
"""
