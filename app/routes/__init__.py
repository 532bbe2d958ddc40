"""Thin HTTP routes: parse, call one service, render or return."""
