"""Tests of alphaforge.report."""
