"""The government data resource catalog (政务信息资源目录): units, resource classes, fields."""
