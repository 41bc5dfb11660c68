"""The tuned model in use: ``mathlora ask`` (questions from the shell) and ``mathlora serve`` (an
OpenAI-compatible endpoint), both with the calculator for calculator-style models."""
