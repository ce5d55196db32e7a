"""The map's shapes: each district's outline from the spatial base (its areas of level 区县; the
union of its grid cells for a district the base lacks, ``grid.mapping``), simplified for the
screen — never a shape drawn by hand, never a tile from the internet."""

from __future__ import annotations

import shapely

from citydata.brain.queries import Context, Payload, query
from citydata.brain.queries.bases import division_names
from citydata.grid import mapping

TOLERANCE = 0.0003  # degrees, ~30 m: invisible at a district's scale, a fraction of the points


@query("geo.districts")
def districts(ctx: Context) -> Payload:
    found = mapping.districts_geojson(ctx.session, division_names())
    for feature in found["features"]:
        shape = shapely.geometry.shape(feature["geometry"])
        simpler = shape.simplify(TOLERANCE, preserve_topology=True)
        feature["geometry"] = shapely.geometry.mapping(shapely.set_precision(simpler, 1e-5))
    return {"kind": "map", "geojson": found, "regions": []}
