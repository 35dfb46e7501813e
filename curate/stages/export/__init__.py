"""Export: reviewed records -> preference pairs, SFT rows and all responses, with a dataset card."""

from curate.stages.export.export import export

__all__ = ["export"]
