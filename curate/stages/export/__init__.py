"""Export: reviewed records -> preference pairs, SFT rows and all responses, with a dataset card.

`export.py` runs it (pull, decide, write, publish); `decide.py` says who won each record and accounts
for the rest; `formats/` holds one module per output format; `card.py` writes the dataset card;
`hub.py` publishes to the Hugging Face Hub.
"""

from curate.stages.export.export import export
from curate.stages.export.hub import ExportError

__all__ = ["ExportError", "export"]
