"""Polynomial fusion: compose the forms of neighbouring kernels into fewer kernels.

``classify`` derives each kernel's mapping type from its form; ``compose`` substitutes one
kernel's form into another's (the polynomial composition); ``plan`` decides, with a legality
table and a profitability rule, which compositions to make and records the ones it refuses.
"""
