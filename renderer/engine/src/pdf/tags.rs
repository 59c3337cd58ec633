//! Tagged PDF: structure elements, marked-content references and the parent tree.
//!
//! Each document's [`StructTree`] becomes one element tree: its root is a `Document`
//! element in a file holding one document, or a `Part` under a common `Document` element
//! in a print file. An element's children are its sub-elements and the marked-content
//! sequences tagged with it, merged in reading order: a content reference goes before the
//! first sub-element whose own content comes later in the page stream.

use pdf_writer::types::{StructRole, TableHeaderScope};
use pdf_writer::writers::StructTreeRoot;
use pdf_writer::{Pdf, Ref, TextStr};
use sha2::{Digest, Sha256};

use crate::layout::frame::{Role, StructId, StructTree};

/// Returns the standard structure type name of a role (also the marked-content tag).
pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Document => "Document",
        Role::Sect => "Sect",
        Role::Div => "Div",
        Role::H(n) => match n {
            0 | 1 => "H1",
            2 => "H2",
            3 => "H3",
            4 => "H4",
            5 => "H5",
            _ => "H6",
        },
        Role::P => "P",
        Role::L => "L",
        Role::LI => "LI",
        Role::Lbl => "Lbl",
        Role::LBody => "LBody",
        Role::Table => "Table",
        Role::THead => "THead",
        Role::TBody => "TBody",
        Role::TFoot => "TFoot",
        Role::TR => "TR",
        Role::TH => "TH",
        Role::TD => "TD",
        Role::Figure => "Figure",
    }
}

fn struct_role(role: Role) -> StructRole {
    match role {
        Role::Document => StructRole::Document,
        Role::Sect => StructRole::Sect,
        Role::Div => StructRole::Div,
        Role::H(n) => match n {
            0 | 1 => StructRole::H1,
            2 => StructRole::H2,
            3 => StructRole::H3,
            4 => StructRole::H4,
            5 => StructRole::H5,
            _ => StructRole::H6,
        },
        Role::P => StructRole::P,
        Role::L => StructRole::L,
        Role::LI => StructRole::LI,
        Role::Lbl => StructRole::Lbl,
        Role::LBody => StructRole::LBody,
        Role::Table => StructRole::Table,
        Role::THead => StructRole::THead,
        Role::TBody => StructRole::TBody,
        Role::TFoot => StructRole::TFoot,
        Role::TR => StructRole::TR,
        Role::TH => StructRole::TH,
        Role::TD => StructRole::TD,
        Role::Figure => StructRole::Figure,
    }
}

/// Feeds the structure (roles, parents, alternative texts) into a content hash.
pub(crate) fn hash_structure(h: &mut Sha256, tree: &StructTree) {
    h.update(b"struct");
    for node in &tree.nodes {
        h.update(role_name(node.role).as_bytes());
        h.update(node.parent.map_or(u32::MAX, |p| p.0).to_le_bytes());
        let alt = node.alt.as_deref().unwrap_or("");
        h.update((alt.len() as u32).to_le_bytes());
        h.update(alt.as_bytes());
    }
}

/// A page of a tagged document as written into the file.
pub(crate) struct TaggedPage {
    pub page: Ref,
    /// The page's key in the parent tree (pages without marked content have none).
    pub key: Option<i32>,
    pub mcids: Vec<StructId>,
}

/// What the writer keeps of a tagged document until the file is finished.
pub(crate) struct TaggedDoc {
    pub structure: StructTree,
    pub title: String,
    pub lang: String,
    pub pages: Vec<TaggedPage>,
}

/// One marked-content reference: reading-order position, page, MCID.
#[derive(Clone, Copy)]
struct Mcr {
    seq: u32,
    page: Ref,
    mcid: i32,
}

/// Returns the reading-order position of the first content of each node's subtree.
fn first_content(tree: &StructTree, mcrs: &[Vec<Mcr>]) -> Vec<u32> {
    let n = tree.nodes.len();
    let mut first: Vec<u32> = mcrs
        .iter()
        .map(|m| m.first().map_or(u32::MAX, |m| m.seq))
        .collect();
    // Post-order without recursion: parents are fixed up after all their descendants.
    let mut order = Vec::with_capacity(n);
    let mut stack = vec![0usize];
    let mut seen = vec![false; n];
    while let Some(id) = stack.pop() {
        if id >= n || seen[id] {
            continue;
        }
        seen[id] = true;
        order.push(id);
        stack.extend(tree.nodes[id].children.iter().map(|c| c.0 as usize));
    }
    for &id in order.iter().rev() {
        let min = tree.nodes[id]
            .children
            .iter()
            .filter_map(|c| first.get(c.0 as usize).copied())
            .min()
            .unwrap_or(u32::MAX);
        first[id] = first[id].min(min);
    }
    first
}

/// Writes every document's structure elements, the parent tree and the structure tree
/// root at `root`.
pub(crate) fn write_structure(
    pdf: &mut Pdf,
    alloc: &mut impl FnMut() -> Ref,
    root: Ref,
    docs: &[TaggedDoc],
    file_lang: &str,
) {
    let multi = docs.len() > 1;
    let top = if multi { alloc() } else { Ref::new(1) };
    let mut doc_roots = Vec::with_capacity(docs.len());
    let mut parent_tree: Vec<(i32, Ref)> = Vec::new();

    for doc in docs {
        let tree = &doc.structure;
        let n = tree.nodes.len();
        let refs: Vec<Ref> = (0..n).map(|_| alloc()).collect();
        let node_of = |id: StructId| {
            if (id.0 as usize) < n {
                id.0 as usize
            } else {
                0
            }
        };
        let mut mcrs: Vec<Vec<Mcr>> = vec![Vec::new(); n];
        let mut seq = 0u32;
        for page in &doc.pages {
            for (mcid, &sid) in page.mcids.iter().enumerate() {
                mcrs[node_of(sid)].push(Mcr {
                    seq,
                    page: page.page,
                    mcid: mcid as i32,
                });
                seq += 1;
            }
            if let Some(key) = page.key {
                let array = alloc();
                pdf.indirect(array)
                    .array()
                    .items(page.mcids.iter().map(|&sid| refs[node_of(sid)]));
                parent_tree.push((key, array));
            }
        }
        let first = first_content(tree, &mcrs);

        for (id, node) in tree.nodes.iter().enumerate() {
            let mut el = pdf.struct_element(refs[id]);
            if id == 0 {
                el.kind(if multi {
                    StructRole::Part
                } else {
                    StructRole::Document
                });
                el.parent(if multi { top } else { root });
                if multi && !doc.title.is_empty() {
                    el.title(TextStr(&doc.title));
                }
                if !doc.lang.is_empty() && doc.lang != file_lang {
                    el.lang(TextStr(&doc.lang));
                }
            } else {
                el.kind(struct_role(node.role));
                el.parent(refs[node.parent.map_or(0, node_of)]);
            }
            if let Some(alt) = &node.alt {
                el.alt(TextStr(alt));
            } else if node.role == Role::Figure {
                // PDF/UA wants an alternative text on every figure; say that none was given.
                el.alt(TextStr(""));
            }
            if node.role == Role::TH {
                el.attributes()
                    .push()
                    .table()
                    .scope(TableHeaderScope::Column);
            }
            let own = &mcrs[id];
            let el_page = own.first().map(|m| m.page);
            if let Some(p) = el_page {
                el.page(p);
            }
            let mut kids = el.children();
            let push_mcr = |kids: &mut pdf_writer::writers::StructChildren<'_>, m: Mcr| {
                if Some(m.page) == el_page {
                    kids.marked_content_id(m.mcid);
                } else {
                    kids.marked_content_ref()
                        .marked_content_id(m.mcid)
                        .page(m.page);
                }
            };
            let mut mi = 0;
            for &child in &node.children {
                let c = child.0 as usize;
                if c >= n || c == 0 {
                    continue;
                }
                while mi < own.len() && own[mi].seq < first[c] {
                    push_mcr(&mut kids, own[mi]);
                    mi += 1;
                }
                kids.struct_element(refs[c]);
            }
            for &m in &own[mi..] {
                push_mcr(&mut kids, m);
            }
        }
        if let Some(&r) = refs.first() {
            doc_roots.push(r);
        }
    }

    if multi {
        pdf.struct_element(top)
            .kind(StructRole::Document)
            .parent(root)
            .children()
            .items_struct(&doc_roots);
    }
    let mut tree_root = pdf.indirect(root).start::<StructTreeRoot>();
    if multi {
        tree_root.child(top);
    } else if let Some(&r) = doc_roots.first() {
        tree_root.child(r);
    }
    let next_key = parent_tree.iter().map(|&(k, _)| k + 1).max().unwrap_or(0);
    {
        let mut tree = tree_root.parent_tree();
        let mut nums = tree.nums();
        for &(k, r) in &parent_tree {
            nums.insert(k, r);
        }
    }
    tree_root.parent_tree_next_key(next_key);
}

/// Writes child struct elements one after another.
trait ItemsStruct {
    fn items_struct(&mut self, refs: &[Ref]);
}

impl ItemsStruct for pdf_writer::writers::StructChildren<'_> {
    fn items_struct(&mut self, refs: &[Ref]) {
        for &r in refs {
            self.struct_element(r);
        }
    }
}
