"""What tests/unit/test_ci.py and tests/integration/test_ci.py share."""

from __future__ import annotations

LIVE = """config:
  bluegreen:role: edge
  bluegreen:activeColor: {color}
  bluegreen:dnsZone: bluegreen.test
  bluegreen:tsigSecret:
    secure: v1:OPOSaU8RAK3sKrtm:1efSAfcdYOdSHbE4QRZ6DWXowUjq1vJf0z7KpW8VKe6IJR211cv5H
encryptionsalt: v1:9ZhhETRPH0Q=:v1:/Wbq6UwWbK9Bo3ho:fZcqPOib+6vHXWqNW3nIHi2FtHPSOg==
"""


REASON = "green answered 31 of 120 requests with 5xx or not at all (25.8% > 1.0%)"
