"""The multi-scale Glow of lessons 07-10: model, layers, recipes, training, the
command line, and the digit classifier that judges its samples.
"""
