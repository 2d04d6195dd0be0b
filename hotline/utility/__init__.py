"""Utility emergencies put through on a three-way call (rule H-6): the duty directory."""
