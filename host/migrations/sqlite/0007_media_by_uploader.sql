-- A user's media quota sums the sizes of their uploads at every upload: an index by uploader
-- that carries the size answers it without reading the table.
CREATE INDEX media_by_uploader ON media (uploader, size);
