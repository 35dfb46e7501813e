"""distilabel pipelines that generate the synthetic data: instructions, then preferences."""
