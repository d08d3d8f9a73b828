//! Saying what a plugin does: `Manifest::new()` does nothing; each call adds one thing.

use crate::{IndexSpec, Manifest};

impl Manifest {
    /// A plugin that does nothing yet: add what it does with the methods below.
    pub fn new() -> Manifest {
        Manifest {
            decode: false,
            filter: false,
            index_kinds: Vec::new(),
            routes: false,
            indexes: Vec::new(),
            served_collections: Vec::new(),
        }
    }

    /// It decodes: [`Plugin::decode`](crate::Plugin::decode) is called for every event a source
    /// delivers.
    pub fn decoding(mut self) -> Manifest {
        self.decode = true;
        self
    }

    /// It filters: [`Plugin::on_event`](crate::Plugin::on_event) is called for every event.
    pub fn filtering(mut self) -> Manifest {
        self.filter = true;
        self
    }

    /// It indexes events of these types (`"*"` for all): [`Plugin::index`](crate::Plugin::index)
    /// receives them in batches, in store order.
    pub fn indexing<K: Into<String>>(mut self, kinds: impl IntoIterator<Item = K>) -> Manifest {
        self.index_kinds.extend(kinds.into_iter().map(Into::into));
        self
    }

    /// It answers HTTP requests under `/plugins/{name}/` with
    /// [`Plugin::handle`](crate::Plugin::handle).
    pub fn with_routes(mut self) -> Manifest {
        self.routes = true;
        self
    }

    /// The host keeps an index of `collection` by its values' top-level field `field`, for
    /// [`Collection::find`](crate::Collection::find).
    pub fn find_by(mut self, collection: &str, field: &str) -> Manifest {
        self.indexes.push(IndexSpec { collection: collection.into(), field: field.into() });
        self
    }

    /// The host serves `collection` to clients, read-only, without calling the plugin:
    /// `GET /plugins/{name}/collections/{collection}` (pages, by key prefix or by the value of a
    /// field declared with [`find_by`](Manifest::find_by); `count=true` adds the total) and
    /// `…/{collection}/{key}`. Everything in it becomes public.
    pub fn serving(mut self, collection: &str) -> Manifest {
        self.served_collections.push(collection.into());
        self
    }
}

impl Default for Manifest {
    fn default() -> Manifest {
        Manifest::new()
    }
}
