"""Reliability tests of the background writer (marker ``reliability``) and their helpers."""
