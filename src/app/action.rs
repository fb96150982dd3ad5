//! What a key can ask the app to do. Keys are bound to actions by the [key map]
//! (`super::keymap`); the help overlay and the footer are generated from both.

/// Where an action applies, for grouping the help overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    Global,
    Navigation,
    Snapshot,
    Schedule,
    Reports,
    Cache,
}

impl Group {
    pub fn title(self) -> &'static str {
        match self {
            Group::Global => "Everywhere",
            Group::Navigation => "Moving around",
            Group::Snapshot => "Snapshot tab",
            Group::Schedule => "Schedule tab",
            Group::Reports => "Reports tab",
            Group::Cache => "Cache tab",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Quit,
    Suspend,
    Help,
    NextTab,
    PrevTab,
    TabSnapshot,
    TabSchedule,
    TabReports,
    TabCache,
    Up,
    Down,
    Left,
    Right,
    Open,
    Back,
    Confirm,
    Trigger,
    Cancel,
    Refresh,
    PageUp,
    PageDown,
    Log,
    Filter,
    Browse,
    Toggle,
    Save,
    Pause,
    OpenReport,
    OpenCompare,
    NextView,
    PrevView,
    SortColumn,
    SortReverse,
    Decline,
    ClearCache,
    PurgeCache,
    CompactStore,
    HideZeros,
}

impl Action {
    /// Every action, in help-overlay order.
    pub const ALL: [Action; 38] = [
        Action::Quit,
        Action::Suspend,
        Action::Help,
        Action::NextTab,
        Action::PrevTab,
        Action::TabSnapshot,
        Action::TabSchedule,
        Action::TabReports,
        Action::TabCache,
        Action::Up,
        Action::Down,
        Action::Left,
        Action::Right,
        Action::Open,
        Action::PageUp,
        Action::PageDown,
        Action::Back,
        Action::Confirm,
        Action::Decline,
        Action::Trigger,
        Action::Cancel,
        Action::Log,
        Action::Filter,
        Action::Browse,
        Action::Toggle,
        Action::Save,
        Action::Pause,
        Action::OpenReport,
        Action::OpenCompare,
        Action::NextView,
        Action::PrevView,
        Action::SortColumn,
        Action::SortReverse,
        Action::ClearCache,
        Action::PurgeCache,
        Action::CompactStore,
        Action::HideZeros,
        Action::Refresh,
    ];

    /// The name used in the `[keys]` table of the config.
    pub fn name(self) -> &'static str {
        match self {
            Action::Quit => "quit",
            Action::Suspend => "suspend",
            Action::Help => "help",
            Action::NextTab => "next_tab",
            Action::PrevTab => "prev_tab",
            Action::TabSnapshot => "tab_snapshot",
            Action::TabSchedule => "tab_schedule",
            Action::TabReports => "tab_reports",
            Action::TabCache => "tab_cache",
            Action::Up => "up",
            Action::Down => "down",
            Action::Left => "left",
            Action::Right => "right",
            Action::Open => "open",
            Action::Back => "back",
            Action::Confirm => "confirm",
            Action::Trigger => "trigger",
            Action::Cancel => "cancel",
            Action::Refresh => "refresh",
            Action::PageUp => "page_up",
            Action::PageDown => "page_down",
            Action::Log => "log",
            Action::Filter => "filter",
            Action::Browse => "browse",
            Action::Toggle => "toggle",
            Action::Save => "save",
            Action::Pause => "pause",
            Action::OpenReport => "open_report",
            Action::OpenCompare => "open_compare",
            Action::NextView => "next_view",
            Action::PrevView => "prev_view",
            Action::SortColumn => "sort_column",
            Action::SortReverse => "sort_reverse",
            Action::Decline => "decline",
            Action::ClearCache => "clear_cache",
            Action::PurgeCache => "purge_cache",
            Action::CompactStore => "compact_store",
            Action::HideZeros => "hide_zeros",
        }
    }

    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }

    /// One line for the help overlay.
    pub fn description(self) -> &'static str {
        match self {
            Action::Quit => "quit (asks first while a snapshot runs)",
            Action::Suspend => "suspend to the shell (its fg command resumes)",
            Action::Help => "show or hide this help",
            Action::NextTab => "next tab",
            Action::PrevTab => "previous tab",
            Action::TabSnapshot => "Snapshot tab",
            Action::TabSchedule => "Schedule tab",
            Action::TabReports => "Reports tab",
            Action::TabCache => "Cache tab",
            Action::Up => "move up / scroll up",
            Action::Down => "move down / scroll down",
            Action::Left => "move left",
            Action::Right => "move right",
            Action::Open => "open the selected cell's details",
            Action::Back => "close the detail view, help or prompt",
            Action::Confirm => "answer yes to a prompt",
            Action::Trigger => "run a snapshot now",
            Action::Cancel => "cancel the running snapshot (keeps the partial result)",
            Action::Refresh => "reload: cache figures (Cache tab), report files (Reports tab)",
            Action::PageUp => "scroll the log back",
            Action::PageDown => "scroll the log forward (to the end: follow it)",
            Action::Log => "show the last run's log in place of the run history",
            Action::Filter => "filter the components by name (Enter keeps it, Esc clears it)",
            Action::Browse => "open the selected cell's build in the browser (or copy its URL)",
            Action::Toggle => "switch a true/false field, or the picked day of the days field",
            Action::Save => "save the edited schedule; it is in force at once",
            Action::Pause => "pause or resume automatic snapshots (Snapshot tab too)",
            Action::OpenReport => "open a run: Locust CSVs, a JMeter .jtl or k6 results",
            Action::OpenCompare => "open an earlier run to compare with (the base)",
            Action::NextView => "next pane (Snapshot: matrix, runs or log) / view (Reports)",
            Action::PrevView => "previous pane / view",
            Action::SortColumn => "sort the endpoint table by the next column",
            Action::SortReverse => "reverse the sort order",
            Action::Decline => "answer no to a prompt",
            Action::ClearCache => "clear the selected cache namespace (or all of them); asks first",
            Action::PurgeCache => "purge cache entries nothing can use any more; asks first",
            Action::CompactStore => "rewrite the store's files around their live data; asks first",
            Action::HideZeros => "hide or show the counters that are zero",
        }
    }

    /// A word or two for the footer.
    pub fn hint(self) -> &'static str {
        match self {
            Action::Quit => "quit",
            Action::Suspend => "suspend",
            Action::Help => "help",
            Action::NextTab => "next tab",
            Action::PrevTab => "prev tab",
            Action::TabSnapshot => "snapshot",
            Action::TabSchedule => "schedule",
            Action::TabReports => "reports",
            Action::TabCache => "cache",
            Action::Up => "up",
            Action::Down => "down",
            Action::Left => "left",
            Action::Right => "right",
            Action::Open => "details",
            Action::Back => "back",
            Action::Confirm => "yes",
            Action::Trigger => "run now",
            Action::Cancel => "cancel run",
            Action::Refresh => "refresh",
            Action::PageUp => "log back",
            Action::PageDown => "log fwd",
            Action::Log => "log",
            Action::Filter => "filter",
            Action::Browse => "browse",
            Action::Toggle => "toggle",
            Action::Save => "save",
            Action::Pause => "pause",
            Action::OpenReport => "open",
            Action::OpenCompare => "compare",
            Action::NextView => "next view",
            Action::PrevView => "prev view",
            Action::SortColumn => "sort",
            Action::SortReverse => "reverse",
            Action::Decline => "no",
            Action::ClearCache => "clear",
            Action::PurgeCache => "purge",
            Action::CompactStore => "compact",
            Action::HideZeros => "zeros",
        }
    }

    /// Other tabs whose keys this action also is (pause works from the Snapshot tab).
    pub fn also_in(self) -> &'static [Group] {
        match self {
            Action::Pause => &[Group::Snapshot],
            _ => &[],
        }
    }

    /// Whether the action is a key of the tab of `group`.
    pub fn applies_in(self, group: Group) -> bool {
        self.group() == group || self.also_in().contains(&group)
    }

    pub fn group(self) -> Group {
        match self {
            Action::Quit
            | Action::Suspend
            | Action::Help
            | Action::NextTab
            | Action::PrevTab
            | Action::TabSnapshot
            | Action::TabSchedule
            | Action::TabReports
            | Action::TabCache => Group::Global,
            Action::Up
            | Action::Down
            | Action::Left
            | Action::Right
            | Action::Open
            | Action::PageUp
            | Action::PageDown
            | Action::Back
            | Action::Confirm
            | Action::Decline => Group::Navigation,
            Action::Trigger | Action::Cancel | Action::Log | Action::Filter | Action::Browse => {
                Group::Snapshot
            }
            Action::Toggle | Action::Save | Action::Pause => Group::Schedule,
            Action::OpenReport
            | Action::OpenCompare
            | Action::NextView
            | Action::PrevView
            | Action::SortColumn
            | Action::SortReverse => Group::Reports,
            Action::Refresh
            | Action::ClearCache
            | Action::PurgeCache
            | Action::CompactStore
            | Action::HideZeros => Group::Cache,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut names: Vec<_> = Action::ALL.iter().map(|a| a.name()).collect();
        for a in Action::ALL {
            assert_eq!(Action::from_name(a.name()), Some(a));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Action::ALL.len());
    }
}
