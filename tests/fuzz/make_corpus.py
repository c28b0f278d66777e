#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<name>/.

Seeds are small, valid-looking inputs of each format (and a few near misses),
so libFuzzer starts from the interesting shapes. Re-running rewrites the
generated files; hand-added seeds (e.g. crash reproducers, named
regression_*) are left alone. Standard library only.
"""
import base64
import hashlib
import hmac
import io
import json
import os
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- auth_fuzz (must match tests/fuzz/auth_fuzz.cc) --------------------------
SECRET = b"fuzz-secret-0123456789"
NOW = 1_700_000_000


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def sign(header, claims, alg=hashlib.sha256, secret=SECRET):
    signing_input = b64url(header.encode()) + b"." + b64url(claims.encode())
    sig = b64url(hmac.new(secret, signing_input, alg).digest()) if alg else b""
    return (signing_input + b"." + sig).decode()


def auth():
    hs256 = '{"alg":"HS256","typ":"JWT"}'
    good = '{"sub":"user-1","iat":%d,"exp":%d}' % (NOW - 60, NOW + 3600)
    tokens = {
        "valid": sign(hs256, good),
        "valid_no_exp": sign(hs256, '{"sub":"u"}'),
        "expired": sign(hs256, '{"sub":"u","exp":%d}' % (NOW - 1)),
        "not_yet_valid": sign(hs256, '{"sub":"u","nbf":%d,"exp":%d}' % (NOW + 60, NOW + 3600)),
        "alg_none": sign('{"alg":"none"}', good, alg=None),
        "hs512": sign('{"alg":"HS512","typ":"JWT"}', good, alg=hashlib.sha512),
        "hs384": sign('{"alg":"HS384"}', good, alg=hashlib.sha384),
        "wrong_secret": sign(hs256, good, secret=b"another-secret"),
        "empty_sub": sign(hs256, '{"sub":"","exp":%d}' % (NOW + 3600)),
        "float_exp": sign(hs256, '{"sub":"u","exp":1.7e9,"nbf":1.69e9}'),
        "string_exp": sign(hs256, '{"sub":"u","exp":"%d"}' % (NOW + 3600)),
    }
    tokens["truncated"] = tokens["valid"][:-10]
    tokens["two_segments"] = tokens["valid"].rsplit(".", 1)[0]
    for name, token in tokens.items():
        write("auth_fuzz", "header_" + name, b"\x00Bearer " + token.encode())
    write("auth_fuzz", "header_lowercase_scheme", b"\x00bearer  " + tokens["valid"].encode() + b"  ")
    write("auth_fuzz", "header_basic", b"\x00Basic dXNlcjpwYXNz")
    write("auth_fuzz", "header_empty", b"\x00")
    # Mode 1: header JSON \n claims JSON, signed by the target.
    write("auth_fuzz", "signed_claims", b"\x01" + good.encode())
    write("auth_fuzz", "signed_header_and_claims", b"\x01" + hs256.encode() + b"\n" + good.encode())
    write("auth_fuzz", "signed_hs256_kid", b'\x01{"alg":"HS256","kid":"k1","typ":"JWT"}\n{"sub":"a","exp":1e300}')
    write("auth_fuzz", "signed_claims_array_sub", b'\x01{"sub":["a"],"exp":1800000000}')
    write("auth_fuzz", "signed_claims_unicode", '\x01{"sub":"\\u00e9l\\u00e8ve \\ud83d\\ude00","nbf":0}'.encode())
    # Mode 2: raw segments, signed by the target.
    seg = tokens["valid"].rsplit(".", 1)[0]
    write("auth_fuzz", "signed_segments", b"\x02" + seg.encode())
    write("auth_fuzz", "signed_segments_padded", b"\x02" + seg.encode() + b"==")
    # Mode 3: MintToken user ids.
    write("auth_fuzz", "mint_user", b"\x03user-1")
    write("auth_fuzz", "mint_user_quotes", b'\x03a"b\\c')
    write("auth_fuzz", "mint_user_utf8", "\x03élève".encode())


# --- router_fuzz ---------------------------------------------------------------
def router():
    seeds = {
        "upload": "POST /api/chat/upload/async",
        "status": "GET /api/chat/upload/status/4b0c6f1e-8a2d-4c4e-9f3a-1d2e3f4a5b6c",
        "status_no_id": "GET /api/chat/upload/status/",
        "status_extra": "GET /api/chat/upload/status/x/y",
        "search": "GET /api/chat/memory/search?session_id=s1&q=invoice&limit=5",
        "search_encoded": "GET /api/chat/memory/search?session_id=s%201&q=quick+brown%2Bfox&limit=+7",
        "search_repeat": "GET /api/chat/memory/search?q=a&session_id=x&&session_id=y&limit=99999999999",
        "search_bad_escape": "GET /api/chat/memory/search?session_id=s&q=%zz",
        "search_no_q": "GET /api/chat/memory/search?session_id=s",
        "wrong_method": "DELETE /healthz",
        "metrics": "GET /metrics",
        "readyz": "GET /readyz?x",
        "double_slash": "GET //api/chat/upload/async",
        "trailing_slash": "GET /healthz/",
    }
    for name, s in seeds.items():
        write("router_fuzz", name, s)


# --- job_payload_fuzz ------------------------------------------------------------
def job_payload():
    data = {"jobId": "4b0c6f1e-8a2d-4c4e-9f3a-1d2e3f4a5b6c", "userId": "u1", "sessionId": "s1",
            "storagePath": "/srv/conveyor/uploads/4b0c6f1e-8a2d-4c4e-9f3a-1d2e3f4a5b6c",
            "originalName": "notes.txt", "mimeType": "text/plain", "size": 1234,
            "message": "summarise"}
    write("job_payload_fuzz", "data_conveyor", json.dumps(data, separators=(",", ":")))
    node = dict(data)
    del node["message"]
    node["size"] = 12.5
    node["extra"] = {"nested": [1, 2, None]}
    write("job_payload_fuzz", "data_node_producer", json.dumps(node))
    write("job_payload_fuzz", "data_missing_user", '{"jobId":"j","sessionId":"s","storagePath":"/p"}')
    write("job_payload_fuzz", "data_unicode", '{"jobId":"j","userId":"\\u00e9","sessionId":"\\ud83d\\ude00",'
                                              '"storagePath":"/p\\u0000x","size":-1}')
    write("job_payload_fuzz", "opts_conveyor",
          '{"attempts":3,"backoff":{"type":"exponential","delay":5000},"removeOnComplete":1000,'
          '"removeOnFail":1000,"jobId":"4b0c6f1e"}')
    write("job_payload_fuzz", "opts_lua_cjson",
          '{"removeOnFail":{"age":3600,"count":10},"jobId":"a\\/b","backoff":{"delay":1.2345678901234e+14,'
          '"type":"fixed"},"attempts":2,"removeOnComplete":true,"x":{}}')
    write("job_payload_fuzz", "opts_bare_backoff", '{"backoff":700,"delay":250,"removeOnComplete":false}')
    write("job_payload_fuzz", "opts_large", '{"attempts":1e10,"backoff":{"type":"exponential","delay":9e18},'
                                            '"removeOnComplete":-5e9,"delay":-1}')
    fields = [b"name", b"file-upload", b"data", json.dumps(data).encode(),
              b"opts", b'{"attempts":3,"backoff":{"type":"exponential","delay":5000}}',
              b"timestamp", b"1700000000000", b"atm", b"1", b"ats", b"2", b"stc", b"0"]
    write("job_payload_fuzz", "hash_fields", b"\x00".join(fields))
    write("job_payload_fuzz", "hash_fields_odd", b"\x00".join(
        [b"attemptsMade", b"2147483647", b"opts", b'{"attempts":2147483647}', b"defa", b"stalled"]))


# --- rtf_fuzz ------------------------------------------------------------------
def rtf():
    with open(os.path.join(HERE, "..", "data", "sample.rtf"), "rb") as f:
        write("rtf_fuzz", "sample", f.read())
    seeds = {
        "control_words": b"{\\rtf1 a\\par b\\line c\\tab d\\emdash\\bullet\\ldblquote q\\rdblquote}",
        "unicode": b"{\\rtf1\\uc2 \\u233XYz \\u-10179?\\u-8704? \\u-10179?x \\uc0 \\u233 z}",
        "codepage": b"{\\rtf1\\ansi\\ansicpg1251 \\'cf\\'f0\\'e8 {\\mac \\'8e}{\\pc \\'82}}",
        "shift_jis": b"{\\rtf1\\ansi\\ansicpg932 \\'82\\'a0\\'82}",
        "binary": b"{\\rtf1 a\\bin4 }{}\\}b\\bin0 c}",
        "destinations": b"{\\rtf1{\\fonttbl{\\f0 Arial;}}{\\colortbl;\\red0;}{\\*\\unknown x}{\\info{\\title t}}body}",
        "table": b"{\\rtf1\\trowd\\cellx1000\\cellx2000 A\\cell B\\cell\\row C\\cell\\row}",
        "symbols": b"{\\rtf1 a\\~b\\_c\\-d\\|e\\{\\}\\\\\r\n\\\n}",
        "truncated": b"{\\rtf1 {\\b bold",
        "nested": b"{\\rtf1 " + b"{" * 40 + b"deep" + b"}" * 40 + b"}",
        "long_word": b"{\\rtf1\\abcdefghijklmnopqrstuvwxyzabcdefghijkl-12345678901234 x}",
        "not_rtf": b"{\\rtx1 hello}",
    }
    for name, data in seeds.items():
        write("rtf_fuzz", name, data)


# --- office_fuzz (must match tests/fuzz/office_fuzz.cc and src/processing/test_files.cc)
XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"


def content_types(overrides):
    s = (XML_DECL + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
         '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
         '<Default Extension="xml" ContentType="application/xml"/>')
    for part, t in overrides:
        s += '<Override PartName="/%s" ContentType="%s"/>' % (part, t)
    return s + "</Types>"


def rels(id_targets):
    s = XML_DECL + '<Relationships xmlns="%s">' % PKG_REL_NS
    for i, t in id_targets:
        s += '<Relationship Id="%s" Type="%s/x" Target="%s"/>' % (i, REL_NS, t)
    return s + "</Relationships>"


def docx(body):
    return [("[Content_Types].xml", content_types([("word/document.xml",
             "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml")])),
            ("_rels/.rels", rels([("rId1", "word/document.xml")])),
            ("word/document.xml", XML_DECL + '<w:document xmlns:w="http://schemas.openxmlformats.org/'
             'wordprocessingml/2006/main"><w:body>' + body + "</w:body></w:document>")]


def xlsx(shared, sheets):
    ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    wb = XML_DECL + '<workbook xmlns="%s" xmlns:r="%s"><sheets>' % (ns, REL_NS)
    rl = [("rIdS", "sharedStrings.xml")]
    parts = []
    for i, (name, data) in enumerate(sheets, 1):
        wb += '<sheet name="%s" sheetId="%d" r:id="rId%d"/>' % (name, i, i)
        rl.append(("rId%d" % i, "worksheets/sheet%d.xml" % i))
        parts.append(("xl/worksheets/sheet%d.xml" % i,
                      XML_DECL + '<worksheet xmlns="%s"><sheetData>%s</sheetData></worksheet>' % (ns, data)))
    wb += "</sheets></workbook>"
    sst = XML_DECL + '<sst xmlns="%s">' % ns + "".join("<si><t>%s</t></si>" % s for s in shared) + "</sst>"
    return [("[Content_Types].xml", content_types([("xl/workbook.xml",
             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml")])),
            ("_rels/.rels", rels([("rId1", "xl/workbook.xml")])),
            ("xl/workbook.xml", wb), ("xl/_rels/workbook.xml.rels", rels(rl)),
            ("xl/sharedStrings.xml", sst)] + parts


def pptx(texts):
    p = "http://schemas.openxmlformats.org/presentationml/2006/main"
    a = "http://schemas.openxmlformats.org/drawingml/2006/main"
    pres = XML_DECL + '<p:presentation xmlns:p="%s" xmlns:r="%s"><p:sldIdLst>' % (p, REL_NS)
    rl, slides = [], []
    n = len(texts)
    for i, t in enumerate(texts):
        f = "slide%d.xml" % (n - i)
        pres += '<p:sldId id="%d" r:id="rId%d"/>' % (256 + i, i + 1)
        rl.append(("rId%d" % (i + 1), "slides/" + f))
        slides.append(("ppt/slides/" + f, XML_DECL + '<p:sld xmlns:p="%s" xmlns:a="%s"><p:cSld><p:spTree>'
                       '<p:sp><p:txBody><a:p><a:r><a:t>%s</a:t></a:r></a:p><a:tbl><a:tr><a:tc><a:txBody>'
                       '<a:p><a:r><a:t>cell</a:t></a:r></a:p></a:txBody></a:tc></a:tr></a:tbl></p:txBody>'
                       '</p:sp></p:spTree></p:cSld></p:sld>' % (p, a, t)))
    pres += "</p:sldIdLst></p:presentation>"
    return [("[Content_Types].xml", content_types([("ppt/presentation.xml",
             "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml")])),
            ("_rels/.rels", rels([("rId1", "ppt/presentation.xml")])),
            ("ppt/presentation.xml", pres), ("ppt/_rels/presentation.xml.rels", rels(rl))] + slides


def odf(mimetype, body):
    return [("mimetype", mimetype),
            ("META-INF/manifest.xml", XML_DECL + '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:'
             'opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" '
             'manifest:media-type="%s"/></manifest:manifest>' % mimetype),
            ("content.xml", XML_DECL + '<office:document-content'
             ' xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
             ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
             ' xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
             ' xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"'
             ' office:version="1.3"><office:body>' + body + "</office:body></office:document-content>")]


def office():
    docs = {
        "docx": docx('<w:p><w:r><w:t>Project kickoff.</w:t></w:r></w:p><w:p><w:r><w:t xml:space="preserve">'
                     'Budget is </w:t></w:r><w:r><w:tab/><w:t>approved</w:t></w:r></w:p><w:tbl><w:tr><w:tc><w:p>'
                     '<w:r><w:t>Owner</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Task</w:t></w:r></w:p>'
                     '</w:tc></w:tr></w:tbl><w:p><w:r><w:delText>gone</w:delText><w:t>A &amp; B</w:t>'
                     '</w:r><w:br/></w:p>'),
        "xlsx": xlsx(["Item", "Price", "Nuts"],
                     [("Stock", '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
                                '<row r="2"><c r="A2" t="s"><v>2</v></c><c r="C2"><v>3.5</v></c>'
                                '<c r="D2" t="b"><v>1</v></c><c r="E2" t="inlineStr"><is><t>inline</t></is></c></row>'),
                      ("Empty", "")]),
        "pptx": pptx(["First: agenda", "Second: results"]),
        "odt": odf("application/vnd.oasis.opendocument.text",
                   '<office:text><text:h text:outline-level="1">Report</text:h><text:p>Water<text:s text:c="2"/>'
                   'levels<text:tab/>rose.<text:line-break/>Next.</text:p><office:annotation><text:p>private'
                   '</text:p></office:annotation><table:table table:name="T1"><table:table-row>'
                   '<table:table-cell><text:p>River</text:p></table:table-cell></table:table-row></table:table>'
                   '</office:text>'),
        "ods": odf("application/vnd.oasis.opendocument.spreadsheet",
                   '<office:spreadsheet><table:table table:name="Budget"><table:table-row><table:table-cell>'
                   '<text:p>Item</text:p></table:table-cell><table:table-cell table:number-columns-repeated="3"/>'
                   '<table:table-cell table:number-columns-repeated="2"><text:p>Cost</text:p></table:table-cell>'
                   '<table:covered-table-cell/></table:table-row></table:table></office:spreadsheet>'),
        "odp": odf("application/vnd.oasis.opendocument.presentation",
                   '<office:presentation><draw:page draw:name="p1"><draw:frame><draw:text-box><text:p>Welcome'
                   '</text:p></draw:text-box></draw:frame></draw:page><draw:page><text:p>Roadmap</text:p>'
                   '</draw:page></office:presentation>'),
    }
    docs["docx_doctype"] = docx("<w:p/>")
    docs["docx_doctype"][2] = ("word/document.xml", '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "x">]>'
                               '<w:document xmlns:w="w"><w:body><w:p><w:r><w:t>&e;</w:t></w:r></w:p></w:body></w:document>')
    docs["docx_deep"] = docx("<w:p>" * 210 + "</w:p>" * 210)
    for name, entries in docs.items():
        spec = b"".join(b"\x01" + n.encode() + b"\x02" + c.encode() for n, c in entries)
        write("office_fuzz", "entries_" + name, spec)
        if name in ("docx", "xlsx", "pptx", "odt", "ods", "odp"):
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as z:
                for n, c in entries:
                    method = zipfile.ZIP_STORED if n == "mimetype" else zipfile.ZIP_DEFLATED
                    z.writestr(n, c, compress_type=method)
            write("office_fuzz", "zip_" + name, buf.getvalue())
    # A small bomb: an entry of zeros far past the compression ratio.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, c in docx("<w:p/>"):
            z.writestr(n, c, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("word/bomb.xml", b"\0" * (3 << 20), compress_type=zipfile.ZIP_DEFLATED)
    write("office_fuzz", "zip_bomb", buf.getvalue())


# --- sandbox_protocol_fuzz (lines as src/worker/sandbox_protocol.cc writes them)
def sandbox_protocol():
    lines = {
        "progress": {"progress": {"stage": "extract", "percent": 20}},
        "result": {"result": {"kind": "docx", "kindId": 7, "text": "Hello world. Second sentence.",
                              "summary": "Word document, 4 words.", "words": 4, "pages": 0, "sheets": 0,
                              "slides": 0, "tables": 1, "encoding": "",
                              "chunks": [{"o": 0, "n": 12}, {"o": 6, "n": 23}, {"t": "other text"}]},
                   "isolation": "netns+seccomp"},
        "result_bad_chunk": {"result": {"kindId": 1, "text": "abc", "chunks": [{"o": 2, "n": 5}]}},
        "result_kind_out_of_range": {"result": {"kindId": 99, "text": "x", "words": -3}},
        "error": {"error": {"code": "resource_exhausted", "message": "File needs too much memory to parse"}},
        "error_unknown_code": {"error": {"code": "ok", "message": "?"}},
        "request": {"path": "/srv/uploads/x", "nameHint": "a.txt", "message": "m",
                    "limits": {"maxInputBytes": 67108864, "maxTextBytes": 16777216, "chunkChars": 1000,
                               "chunkOverlapChars": 100, "summarySentences": 3}},
    }
    for name, obj in lines.items():
        write("sandbox_protocol_fuzz", name, json.dumps(obj, separators=(",", ":")) + "\n")
    write("sandbox_protocol_fuzz", "not_json", "Segmentation fault\n")


if __name__ == "__main__":
    auth()
    router()
    job_payload()
    rtf()
    office()
    sandbox_protocol()
