"""The meter declaration: what a meter model declares where IEC 62055-41 leaves it open.

A DUT profile (make, model, firmware, PAN, key state, TID store size, display vocabulary,
keypad, port registers, load switch timings, LCD layout, card profile) is read here and only
here. It sits on the floor just above :mod:`sts`: SimLab reads it to play a meter, the harness
reads it to test one, and neither needs the other to do so.
"""
