"""The read side: analytics SQL, drill-downs, figures, reports, documents, receipts and the auditor's
export."""
