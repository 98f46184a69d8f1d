"""Drivers for bench instruments, one small interface per role.

The harness reaches a bench only through these drivers; SimLab's simulated devices are
reached exactly like real ones, by address (pty path, VISA resource string, URL).
"""
