import sys

from schema import schema

sys.stdout.write(schema.as_str() + "\n")
