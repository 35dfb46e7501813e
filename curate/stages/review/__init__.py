"""Human review in Argilla: dataset settings, push, pull."""
