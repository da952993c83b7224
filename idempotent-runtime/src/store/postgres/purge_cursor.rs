//! Where the purge's next batch starts and how many heap pages it spans (`PURGE_SQL` deletes the expired records of
//! a page range): sized from the density the batches measure, so that a batch holds about `limit` records.

/// Records per heap page assumed before the first batch has measured it (a record with a small stored response
/// takes 300 to 500 bytes of an 8 KiB page).
const ASSUMED_RECORDS_PER_PAGE: u64 = 16;

/// The least density a range is sized for, in records per page: a batch spans at most `limit / 16` pages. A range
/// sized in a sparse region (a vacuumed one, or one the purge already swept) that reaches a dense one then deletes
/// about 1.5 × `limit` small records (some 25 a page), where a floor of 4 a page let it delete 6 × (one batch took
/// 175 ms in the bench's scale run) and no floor 85,000 rows. Records over about 500 bytes are purged in batches of
/// fewer records, each as cheap in pages.
const MIN_RECORDS_PER_PAGE: u64 = ASSUMED_RECORDS_PER_PAGE;

/// The purge's position in the heap and the density it last measured.
#[derive(Debug)]
pub(super) struct PurgeCursor {
    /// The first heap page of the next batch.
    next_page: u64,
    /// Live records per page in the last batch that found any.
    records_per_page: u64,
}

impl Default for PurgeCursor {
    fn default() -> Self {
        Self { next_page: 0, records_per_page: ASSUMED_RECORDS_PER_PAGE }
    }
}

/// One batch's page range, `first` included, `end` excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PageRange {
    pub(super) first: u64,
    pub(super) end: u64,
}

impl PurgeCursor {
    /// The range of the next batch of `limit` records.
    pub(super) fn next_range(&self, limit: u64) -> PageRange {
        let limit = limit.max(1);
        let pages = limit.div_ceil(self.records_per_page.max(MIN_RECORDS_PER_PAGE)).clamp(1, limit);
        PageRange { first: self.next_page, end: self.next_page.saturating_add(pages) }
    }

    /// Moves past a batch over `range` that found `examined` live records in a table of `table_pages` pages.
    /// Returns whether the pass is complete (the range reached the table's last page); the next one starts over.
    pub(super) fn advance(&mut self, range: PageRange, examined: u64, table_pages: u64) -> bool {
        let pass_complete = range.end >= table_pages;
        self.next_page = if pass_complete { 0 } else { range.end };
        // The density of the pages the range covered in the table: a range that ran past the last page covered
        // fewer, and measured over the whole range it would make the next pass's first range far too long.
        let covered = range.end.min(table_pages).saturating_sub(range.first);
        if examined > 0 && covered > 0 {
            self.records_per_page = examined.div_ceil(covered);
        }
        pass_complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_range_assumes_small_records() {
        let cursor = PurgeCursor::default();
        assert_eq!(cursor.next_range(5_000), PageRange { first: 0, end: 5_000 / 16 + 1 });
    }

    #[test]
    fn ranges_follow_the_measured_density_and_move_on() {
        let mut cursor = PurgeCursor::default();
        let range = cursor.next_range(1_000);
        assert!(!cursor.advance(range, 63 * 32, 10_000), "the table goes on");
        assert_eq!(cursor.next_range(1_000), PageRange { first: range.end, end: range.end + 1_000 / 32 + 1 });
    }

    #[test]
    fn a_range_past_the_tables_end_measures_only_the_pages_it_covered() {
        let mut cursor = PurgeCursor::default();
        // 313 pages asked for, 3 left in the table, holding 90 records: 30 a page, not 90 / 313.
        let range = PageRange { first: 997, end: 1_310 };
        assert!(cursor.advance(range, 90, 1_000), "the range reached the last page");
        assert_eq!(
            cursor.next_range(5_000),
            PageRange { first: 0, end: 167 },
            "the next pass starts over at 30 a page"
        );
    }

    #[test]
    fn a_sparse_region_does_not_stretch_the_next_range_past_the_assumed_density() {
        let mut cursor = PurgeCursor::default();
        let range = cursor.next_range(5_000);
        cursor.advance(range, range.end - range.first, 100_000);
        assert_eq!(cursor.next_range(5_000).end - range.end, 313, "at most limit / 16 pages");
    }

    #[test]
    fn a_range_that_found_nothing_keeps_the_density() {
        let mut cursor = PurgeCursor::default();
        let range = cursor.next_range(1_000);
        cursor.advance(range, 0, 100_000);
        assert_eq!(cursor.next_range(1_000).end - range.end, range.end - range.first);
    }
}
