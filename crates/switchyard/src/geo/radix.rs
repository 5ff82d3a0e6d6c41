//! nginx's radix tree (ngx_radix_tree.c) for geo's networks: the longest
//! prefix with a value wins. It is kept node for node as nginx builds it
//! (six levels made up front, nodes freed on delete) because whether a
//! `delete` warns depends on which nodes exist.

use std::sync::Arc;

const NIL: u32 = u32::MAX;

/// How many levels nginx makes when it creates a tree (amd64, 4K pages).
const PREALLOCATE: u8 = 6;

#[derive(Debug, Clone)]
struct Node {
    child: [u32; 2],
    parent: u32,
    value: Option<Arc<str>>,
}

/// A tree of networks keyed by the high bits of a 128-bit word (an IPv4
/// tree uses the top 32).
#[derive(Debug, Clone)]
pub struct Radix {
    nodes: Vec<Node>,
    free: Vec<u32>,
}

/// An insert found the network already holding a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

fn bit(key: u128, depth: u8) -> usize {
    ((key >> (127 - u32::from(depth))) & 1) as usize
}

impl Default for Radix {
    fn default() -> Self {
        Radix::new()
    }
}

impl Radix {
    /// An empty tree, with nginx's preallocated levels.
    pub fn new() -> Radix {
        let mut tree = Radix {
            nodes: vec![Node {
                child: [NIL; 2],
                parent: NIL,
                value: None,
            }],
            free: Vec::new(),
        };
        for bits in 1..=PREALLOCATE {
            let step = 1u128 << (128 - u32::from(bits));
            for i in 0..(1u128 << bits) {
                tree.walk_to(i * step, bits);
            }
        }
        tree
    }

    fn alloc(&mut self, parent: u32) -> u32 {
        let node = Node {
            child: [NIL; 2],
            parent,
            value: None,
        };
        match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        }
    }

    /// The node of `key/bits`, made (without a value) if missing.
    fn walk_to(&mut self, key: u128, bits: u8) -> u32 {
        let mut node = 0u32;
        for depth in 0..bits {
            let b = bit(key, depth);
            let next = self.nodes[node as usize].child[b];
            node = if next == NIL {
                let n = self.alloc(node);
                self.nodes[node as usize].child[b] = n;
                n
            } else {
                next
            };
        }
        node
    }

    fn find_node(&self, key: u128, bits: u8) -> Option<u32> {
        let mut node = 0u32;
        for depth in 0..bits {
            node = self.nodes[node as usize].child[bit(key, depth)];
            if node == NIL {
                return None;
            }
        }
        Some(node)
    }

    /// `ngx_radix*tree_insert`: `Busy` when the network has a value.
    pub fn insert(&mut self, key: u128, bits: u8, value: Arc<str>) -> Result<(), Busy> {
        let node = self.walk_to(key, bits);
        let slot = &mut self.nodes[node as usize].value;
        if slot.is_some() {
            return Err(Busy);
        }
        *slot = Some(value);
        Ok(())
    }

    /// `ngx_radix*tree_delete`: whether there was something to delete
    /// (nginx's NGX_OK). A leaf goes, with the parents it leaves empty.
    pub fn delete(&mut self, key: u128, bits: u8) -> bool {
        let Some(mut node) = self.find_node(key, bits) else {
            return false;
        };
        let n = &mut self.nodes[node as usize];
        if n.child != [NIL; 2] {
            return n.value.take().is_some();
        }
        loop {
            let parent = self.nodes[node as usize].parent;
            if parent == NIL {
                // The root without children: nginx never frees it.
                self.nodes[node as usize].value = None;
                return true;
            }
            let p = &mut self.nodes[parent as usize];
            if p.child[1] == node {
                p.child[1] = NIL;
            } else {
                p.child[0] = NIL;
            }
            self.nodes[node as usize].value = None;
            self.free.push(node);
            node = parent;
            let n = &self.nodes[node as usize];
            if n.child != [NIL; 2] || n.value.is_some() || n.parent == NIL {
                return true;
            }
        }
    }

    /// `ngx_radix*tree_find`: the value of the longest network holding
    /// `key`.
    pub fn find(&self, key: u128) -> Option<&Arc<str>> {
        let mut found = None;
        let mut node = 0u32;
        let mut depth = 0u8;
        while node != NIL {
            let n = &self.nodes[node as usize];
            if n.value.is_some() {
                found = n.value.as_ref();
            }
            if depth == 128 {
                break;
            }
            node = n.child[bit(key, depth)];
            depth += 1;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::inet::v4_key;

    fn v(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn the_longest_prefix_wins() {
        let mut t = Radix::new();
        t.insert(0, 0, v("world")).unwrap();
        t.insert(v4_key(0x7f00_0000), 8, v("loopback")).unwrap();
        t.insert(v4_key(0x7f00_0001), 32, v("host")).unwrap();
        assert_eq!(t.find(v4_key(0x7f00_0001)).map(|s| &**s), Some("host"));
        assert_eq!(t.find(v4_key(0x7f00_0002)).map(|s| &**s), Some("loopback"));
        assert_eq!(t.find(v4_key(0x0a00_0001)).map(|s| &**s), Some("world"));
        assert_eq!(t.insert(v4_key(0x7f00_0000), 8, v("again")), Err(Busy));
    }

    #[test]
    fn deletes_take_only_what_is_there() {
        let mut t = Radix::new();
        t.insert(v4_key(0x7f00_0000), 8, v("loopback")).unwrap();
        t.insert(v4_key(0x7f01_0000), 16, v("deeper")).unwrap();
        assert!(t.delete(v4_key(0x7f00_0000), 8));
        assert_eq!(t.find(v4_key(0x7f00_0001)), None);
        assert_eq!(t.find(v4_key(0x7f01_0001)).map(|s| &**s), Some("deeper"));
        // Nothing left at /8 (a node, but no value), nothing at all at /24.
        assert!(!t.delete(v4_key(0x7f00_0000), 8));
        assert!(!t.delete(v4_key(0x0a00_0000), 24));
        // A preallocated level-6 leaf is there to delete, as in nginx.
        assert!(t.delete(v4_key(0x0400_0000), 6));
        assert!(t.delete(v4_key(0x7f01_0000), 16));
        assert_eq!(t.find(v4_key(0x7f01_0001)), None);
    }
}
