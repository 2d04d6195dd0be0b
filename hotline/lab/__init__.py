"""The Asterisk lab: a real Asterisk 22 and SIPp in a Debian-unstable root, on loopback."""
