"""DCAT (DCAT-AP 3) of the catalogue and of each dataset, in Turtle, JSON-LD and RDF/XML,
built with rdflib. The catalogue is paged (hydra:PagedCollection, as CKAN's DCAT extension
does) so a harvester never asks for thousands of datasets in one document.

Every object a DCAT-AP range shape checks carries its class (foaf:Agent, vcard:Kind,
dct:Frequency …): harvesters validate without an ontology, and so does our test."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, SKOS, XSD

from citydata.opendata import api
from citydata.opendata.ckan import resource_url
from citydata.opendata.service import (
    FORMATS,
    LICENSE,
    TOPIC_BY_NAME,
    Dataset,
    OpenDataError,
)
from citydata.web.errors import documented

_TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}
router = APIRouter(
    tags=["opendata 开放数据 (DCAT)"],
    responses={
        404: {"description": "不存在的数据集或格式", **_TEXT},
        429: {"description": "请求过于频繁", **_TEXT},
        **documented(422),
    },
)

VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
EU = "http://publications.europa.eu/resource/authority/"
THEMES = URIRef(EU + "data-theme")
FREQUENCY = {
    "realtime": "UPDATE_CONT",
    "daily": "DAILY",
    "weekly": "WEEKLY",
    "monthly": "MONTHLY",
    "quarterly": "QUARTERLY",
    "yearly": "ANNUAL",
    "irregular": "IRREG",
}
FILE_TYPE = {"csv": "CSV", "xlsx": "XLSX", "json": "JSON"}
SERIALISATIONS = {
    "ttl": ("turtle", "text/turtle; charset=utf-8"),
    "jsonld": ("json-ld", "application/ld+json"),
    "rdf": ("xml", "application/rdf+xml"),
}
PAGE_SIZE = 100
TITLE = "长沙市公共数据开放平台"


def _graph() -> Graph:
    g = Graph()
    for prefix, ns in {
        "dcat": DCAT,
        "dct": DCTERMS,
        "foaf": FOAF,
        "skos": SKOS,
        "vcard": VCARD,
        "hydra": HYDRA,
    }.items():
        g.bind(prefix, ns)
    return g


def _typed(g: Graph, node: URIRef | BNode, *classes: URIRef) -> URIRef | BNode:
    for cls in classes:
        g.add((node, RDF.type, cls))
    return node


def _zh(text: str) -> Literal:
    return Literal(text, lang="zh")


def _license(g: Graph) -> URIRef:
    node = _typed(g, URIRef(LICENSE["url"]), DCTERMS.LicenseDocument)
    g.add((node, DCTERMS.title, Literal(LICENSE["title"])))
    return node


def add_dataset(g: Graph, base: str, ds: Dataset) -> URIRef:
    node = _typed(g, URIRef(f"{base}/dataset/{ds.slug}"), DCAT.Dataset)
    g.add((node, DCTERMS.identifier, Literal(ds.code)))
    g.add((node, DCTERMS.title, _zh(ds.title)))
    g.add((node, DCTERMS.description, _zh(ds.notes.strip() or ds.title)))
    for tag in ds.tags:
        g.add((node, DCAT.keyword, _zh(tag)))
    for name in ds.topics:
        topic = TOPIC_BY_NAME[name]
        theme = _typed(g, URIRef(f"{EU}data-theme/{topic.theme}"), SKOS.Concept)
        g.add((theme, SKOS.inScheme, THEMES))
        g.add((theme, SKOS.prefLabel, Literal(topic.theme)))
        g.add((node, DCAT.theme, theme))
    publisher = _typed(
        g, URIRef(f"{base}/open/organization/{ds.provider}"), FOAF.Agent, FOAF.Organization
    )
    g.add((publisher, FOAF.name, _zh(ds.provider_name)))
    g.add((node, DCTERMS.publisher, publisher))
    frequency = _typed(g, URIRef(f"{EU}frequency/{FREQUENCY[ds.update_cycle]}"), DCTERMS.Frequency)
    g.add((node, DCTERMS.accrualPeriodicity, frequency))
    issued = ds.publish_date or ds.created.date()
    g.add((node, DCTERMS.issued, Literal(issued.isoformat(), datatype=XSD.date)))
    g.add((node, DCTERMS.modified, Literal(ds.modified.isoformat(), datatype=XSD.dateTime)))
    contact = _typed(g, BNode(), VCARD.Kind, VCARD.Organization)
    g.add((contact, VCARD.fn, _zh(f"{ds.provider_name} {ds.contact}".strip())))
    if ds.phone:
        g.add((contact, VCARD.hasTelephone, URIRef("tel:" + ds.phone.replace(" ", ""))))
    g.add((node, DCAT.contactPoint, contact))
    landing = _typed(g, URIRef(f"{base}/open/dataset/{ds.slug}"), FOAF.Document)
    g.add((node, DCAT.landingPage, landing))
    rights = "PUBLIC" if ds.downloadable else "RESTRICTED"
    access = _typed(g, URIRef(f"{EU}access-right/{rights}"), DCTERMS.RightsStatement)
    g.add((node, DCTERMS.accessRights, access))
    service = _typed(g, URIRef(f"{base}/api/3/action/datastore_search"), DCAT.DataService)
    g.add((service, DCTERMS.title, _zh("CKAN datastore_search 数据接口")))
    g.add((service, DCAT.endpointURL, URIRef(f"{base}/api/3/action/datastore_search")))
    for fmt, media in FORMATS.items():
        dist = _typed(g, URIRef(f"{base}/dataset/{ds.slug}/distribution/{fmt}"), DCAT.Distribution)
        g.add((node, DCAT.distribution, dist))
        g.add((dist, DCTERMS.title, _zh(f"{ds.title}（{fmt.upper()}）")))
        g.add((dist, DCAT.accessURL, landing))
        if ds.downloadable:
            g.add((dist, DCAT.downloadURL, URIRef(resource_url(base, ds, fmt))))
        file_type = _typed(g, URIRef(f"{EU}file-type/{FILE_TYPE[fmt]}"), DCTERMS.MediaTypeOrExtent)
        g.add((dist, DCTERMS.format, file_type))
        media_type = _typed(
            g, URIRef(f"https://www.iana.org/assignments/media-types/{media}"), DCTERMS.MediaType
        )
        g.add((dist, DCAT.mediaType, media_type))
        g.add((dist, DCTERMS.license, _license(g)))
        g.add((dist, DCTERMS.modified, Literal(ds.modified.isoformat(), datatype=XSD.dateTime)))
        g.add((dist, DCAT.accessService, service))
    return node


def catalogue_graph(base: str, datasets: list[Dataset], page: int, page_size: int) -> Graph:
    g = _graph()
    catalog = _typed(g, URIRef(f"{base}/catalog"), DCAT.Catalog)
    g.add((catalog, DCTERMS.title, _zh(TITLE)))
    g.add((catalog, DCTERMS.description, _zh("长沙市各部门普遍开放与有条件开放的政务数据资源目录")))
    publisher = _typed(g, URIRef(f"{base}/open"), FOAF.Agent, FOAF.Organization)
    g.add((publisher, FOAF.name, _zh("长沙市数据资源管理局")))
    g.add((catalog, DCTERMS.publisher, publisher))
    home = _typed(g, URIRef(f"{base}/open"), FOAF.Document)
    g.add((catalog, FOAF.homepage, home))
    g.add((catalog, DCTERMS.license, _license(g)))
    language = _typed(g, URIRef(f"{EU}language/ZHO"), DCTERMS.LinguisticSystem)
    g.add((catalog, DCTERMS.language, language))
    scheme = _typed(g, THEMES, SKOS.ConceptScheme)
    g.add((scheme, DCTERMS.title, Literal("Data theme", lang="en")))
    g.add((catalog, DCAT.themeTaxonomy, scheme))
    if datasets:
        modified = max(ds.modified for ds in datasets)
        g.add((catalog, DCTERMS.modified, Literal(modified.isoformat(), datatype=XSD.dateTime)))
    ordered = sorted(datasets, key=lambda d: d.slug)
    last = max(1, -(-len(ordered) // page_size))
    for ds in ordered[(page - 1) * page_size : page * page_size]:
        g.add((catalog, DCAT.dataset, add_dataset(g, base, ds)))
    paging = _typed(g, URIRef(f"{base}/catalog?page={page}"), HYDRA.PagedCollection)
    g.add((paging, HYDRA.totalItems, Literal(len(ordered), datatype=XSD.integer)))
    g.add((paging, HYDRA.itemsPerPage, Literal(page_size, datatype=XSD.integer)))
    g.add((paging, HYDRA.firstPage, Literal(f"{base}/catalog?page=1")))
    g.add((paging, HYDRA.lastPage, Literal(f"{base}/catalog?page={last}")))
    if page < last:
        g.add((paging, HYDRA.nextPage, Literal(f"{base}/catalog?page={page + 1}")))
    if page > 1:
        g.add((paging, HYDRA.previousPage, Literal(f"{base}/catalog?page={page - 1}")))
    return g


def _text(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(message, status, headers=headers, media_type="text/plain; charset=utf-8")


def _serialised(g: Graph, ext: str) -> Response:
    fmt, media = SERIALISATIONS[ext]
    return Response(g.serialize(format=fmt), media_type=media)


@router.get("/catalog.{ext}", include_in_schema=True)
def catalogue_dcat(
    ext: str, request: Request, page: int = Query(1, ge=1, le=1_000_000)
) -> Response:
    """The whole catalogue as DCAT, 100 datasets a page (``?page=2`` …)."""
    if ext not in SERIALISATIONS:
        return _text(f"不支持的格式：{ext}（ttl、jsonld、rdf）", 404)
    if (wait := api.limited(request)) is not None:
        return _text("请求过于频繁", 429, {"Retry-After": str(wait)})
    datasets = list(api.catalogue(request).datasets().values())
    return _serialised(catalogue_graph(api.base_url(request), datasets, page, PAGE_SIZE), ext)


@router.get("/dataset/{slug}.{ext}", include_in_schema=True)
def dataset_dcat(slug: str, ext: str, request: Request) -> Response:
    if ext not in SERIALISATIONS:
        return _text(f"不支持的格式：{ext}（ttl、jsonld、rdf）", 404)
    with request.app.state.store.session() as session:
        try:
            ds = api.catalogue(request).get(session, slug)
        except OpenDataError as exc:
            return _text(str(exc), exc.status)
    g = _graph()
    add_dataset(g, api.base_url(request), ds)
    return _serialised(g, ext)
