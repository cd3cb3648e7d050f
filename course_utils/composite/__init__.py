"""Lesson 09's composite loss: its terms, differentiable sampling and fine-tuning."""
