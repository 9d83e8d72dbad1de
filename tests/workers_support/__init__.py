"""Task modules imported by `spool-console --no-ui` processes started from the tests."""
