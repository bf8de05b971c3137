// Reading the VOC files a test wrote (annotations with libxml2, any file as
// bytes), shared by the synthetic-dataset tests.
#ifndef WH_TEST_VOC_XML_H
#define WH_TEST_VOC_XML_H

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

namespace vocxml {

// The whole file as bytes ("" when it cannot be read).
inline std::string read_text(const std::string &p)
{
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

inline std::string text_of(xmlNode *n)
{
    xmlChar *c = xmlNodeGetContent(n);
    std::string s = c ? reinterpret_cast<const char *>(c) : "";
    xmlFree(c);
    return s;
}

// The first child element called name, or nullptr.
inline xmlNode *child(xmlNode *n, const char *name)
{
    for (xmlNode *c = n ? n->children : nullptr; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && !xmlStrcmp(c->name, BAD_CAST name)) return c;
    return nullptr;
}

// The integer in child name of n: -999 when there is no such child, -998
// when its text is not an integer.
inline int int_of(xmlNode *n, const char *name)
{
    xmlNode *c = child(n, name);
    if (!c) return -999;
    const std::string s = text_of(c);
    char *end;
    const long v = std::strtol(s.c_str(), &end, 10);
    return (end == s.c_str() || *end) ? -998 : static_cast<int>(v);
}

}  // namespace vocxml

#endif
