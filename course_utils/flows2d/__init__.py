"""The flows of lessons 01-06 on 2-D data: bijections, coupling, autoregressive,
inference and continuous flows, and lesson 11's conditional coupling flow.
"""
