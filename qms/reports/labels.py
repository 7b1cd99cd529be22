"""Words of the reports, Vietnamese first, English second (`--lang en`)."""
from __future__ import annotations

_WORDS: dict[str, tuple[str, str]] = {
    "title": ("BÁO CÁO TÌNH HÌNH PHỤC VỤ", "SERVICE REPORT"),
    "day": ("Ngày", "Day"),
    "period": ("Từ ngày {0} đến ngày {1}", "From {0} to {1}"),
    "points": ("Điểm tiếp nhận", "Points"),
    "generated": ("Lập lúc {0} từ nhật ký sự kiện", "Generated {0} from the event log"),
    "section.total": ("Tổng hợp", "Summary"),
    "section.point": ("Theo điểm tiếp nhận", "By point"),
    "section.service": ("Theo lĩnh vực", "By service"),
    "section.counter": ("Theo quầy", "By counter"),
    "section.hour": ("Theo giờ (cấp số và chờ theo giờ lấy số; phục vụ theo giờ xong)",
                     "By hour (issued and waits by hour of issue; served by hour done)"),
    "section.day": ("Theo ngày", "By day"),
    "section.ratings": ("Mức độ hài lòng", "Satisfaction"),
    "col.name": ("", ""),
    "col.issued": ("Cấp số", "Issued"),
    "col.served": ("Phục vụ", "Served"),
    "col.no_show": ("Vắng", "No-show"),
    "col.transferred": ("Chuyển", "Transf."),
    "col.refused": ("Từ chối", "Refused"),
    "col.not_called": ("Chưa gọi", "Not called"),
    "col.wait": ("Chờ TV/P90/max", "Wait med/p90/max"),
    "kpi.transferred": ("Chuyển lĩnh vực/quầy", "Transferred"),
    "kpi.no_show": ("Vắng mặt khi gọi", "Missed calls"),
    "kpi.longest": ("Chờ lâu nhất", "Longest wait"),
    "pdf.title": ("Báo cáo tình hình phục vụ", "Service report"),
    "col.within": ("Chờ ≤{0}′", "Wait ≤{0}′"),
    "col.service_time": ("Phục vụ TV/P90", "Service med/p90"),
    "col.ratings": ("Đánh giá", "Ratings"),
    "col.rating_mean": ("Điểm TB", "Mean"),
    "col.priority": ("Ưu tiên", "Priority"),
    "minutes": ("phút", "min"),
    "refused_detail": ("Từ chối cấp số: hết số trong ngày {0}, quá giờ cấp số {1}, khác {2}",
                       "Tickets refused: daily cap {0}, past cut-off {1}, other {2}"),
    "print_failed": ("Vé đã cấp nhưng máy in không in được: {0}", "Tickets issued but not printed: {0}"),
    "skipped": ("Bỏ qua {0} bản ghi hỏng trong nhật ký", "Skipped {0} damaged log rows"),
    "no_data": ("Không có dữ liệu", "No data"),
    "no_ratings": ("Chưa có đánh giá", "No ratings"),
    "kpi.issued": ("Số phiếu đã cấp", "Tickets issued"),
    "kpi.served": ("Đã phục vụ", "Served"),
    "kpi.wait": ("Thời gian chờ (trung vị)", "Median wait"),
    "kpi.within": ("Được gọi trong {0} phút", "Called within {0} min"),
    "kpi.satisfied": ("Hài lòng", "Satisfied"),
    "kpi.priority": ("Ưu tiên đã phục vụ", "Priority served"),
    "chart.arrivals": ("Lượt lấy số và phục vụ theo giờ", "Arrivals and served by hour"),
    "chart.waits_by_hour": ("Thời gian chờ theo giờ lấy số (phút)", "Wait by hour of issue (min)"),
    "chart.service_waits": ("Thời gian chờ theo lĩnh vực (phút)", "Wait by service (min)"),
    "chart.counters": ("Phục vụ theo quầy (lượt · phút, trung vị)", "Served by counter (n · median min)"),
    "chart.ratings": ("Đánh giá mức độ hài lòng", "Satisfaction ratings"),
    "legend.issued": ("Cấp số", "Issued"),
    "legend.served": ("Đã phục vụ", "Served"),
    "legend.median": ("Trung vị", "Median"),
    "legend.p90": ("90% công dân chờ không quá", "90th percentile"),
    "legend.target": ("Mục tiêu {0} phút", "Target {0} min"),
    "hour": ("Giờ", "Hour"),
    "footer": ("Trung vị (TV): một nửa số công dân chờ ít hơn. P90: 90% công dân chờ không quá mức này. "
               "Chờ = từ lúc lấy số đến lúc được gọi lần đầu. Phục vụ có thể nhiều hơn cấp số: "
               "một phiếu chuyển sang lĩnh vực khác được phục vụ lại.",
               "Median: half of the citizens waited less. P90: 90% waited at most this long. "
               "Wait = from taking the number to the first call. Served may exceed issued: "
               "a ticket transferred to another service is served again."),
}

# rating labels by the number of levels on the counters' keys; level 1 is the least satisfied
_RATINGS: dict[int, list[tuple[str, str]]] = {
    2: [("Không hài lòng", "Dissatisfied"), ("Hài lòng", "Satisfied")],
    3: [("Không hài lòng", "Dissatisfied"), ("Bình thường", "Neutral"), ("Hài lòng", "Satisfied")],
    4: [("Không hài lòng", "Dissatisfied"), ("Bình thường", "Neutral"), ("Hài lòng", "Satisfied"),
        ("Rất hài lòng", "Very satisfied")],
    5: [("Rất không hài lòng", "Very dissatisfied"), ("Không hài lòng", "Dissatisfied"),
        ("Bình thường", "Neutral"), ("Hài lòng", "Satisfied"), ("Rất hài lòng", "Very satisfied")],
}


def word(key: str, lang: str, *args) -> str:
    vi, en = _WORDS[key]
    return (en if lang == "en" else vi).format(*args)


def rating_label(level: int, levels: int, lang: str) -> str:
    names = _RATINGS.get(levels, _RATINGS[4])
    if 1 <= level <= len(names):
        vi, en = names[level - 1]
        return en if lang == "en" else vi
    return f"Level {level}" if lang == "en" else f"Mức {level}"


def satisfied_levels(levels: int) -> list[int]:
    """The levels labelled satisfied ("Hài lòng", "Rất hài lòng")."""
    return {2: [2], 3: [3], 4: [3, 4], 5: [4, 5]}.get(levels, [3, 4])


def label(figures, lang: str) -> str:
    return figures.label_en if lang == "en" else figures.label_vi


def date_text(iso: str, lang: str) -> str:
    """24/11/2026 in Vietnamese, the ISO date in English."""
    if lang == "en":
        return iso
    y, m, d = iso.split("-")
    return f"{d}/{m}/{y}"


def when_text(report, lang: str) -> str:
    if report.since == report.until:
        return f"{word('day', lang)} {date_text(report.since, lang)}"
    return word("period", lang, date_text(report.since, lang), date_text(report.until, lang))


def num(v, lang: str) -> str:
    """A number as people write it: a decimal comma in Vietnamese (12,5), a point in English."""
    if v is None:
        return "–"
    text = f"{v:g}" if isinstance(v, float) else str(v)
    return text.replace(".", ",") if lang != "en" else text
