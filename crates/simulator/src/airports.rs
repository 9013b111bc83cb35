//! Real airports (ICAO code, WGS-84 position, field elevation) and the ICAO
//! 24-bit address block of the country each aircraft is registered in.

pub(crate) struct Airport {
    pub(crate) lat: f64,
    pub(crate) lon: f64,
    pub(crate) elevation_m: f64,
    /// Index into [`COUNTRIES`].
    pub(crate) country: usize,
}

/// A country and its block of ICAO 24-bit addresses (ICAO Annex 10 allocation).
pub(crate) struct Country {
    pub(crate) name: &'static str,
    pub(crate) block_start: u32,
    pub(crate) block_len: u32,
    /// Airline designators to build call signs from.
    pub(crate) airlines: &'static [&'static str],
}

pub(crate) const COUNTRIES: &[Country] = &[
    Country {
        name: "United States",
        block_start: 0xA00000,
        block_len: 0x100000,
        airlines: &["AAL", "DAL", "UAL", "SWA"],
    },
    Country {
        name: "Germany",
        block_start: 0x3C0000,
        block_len: 0x40000,
        airlines: &["DLH", "EWG", "CFG"],
    },
    Country {
        name: "United Kingdom",
        block_start: 0x400000,
        block_len: 0x40000,
        airlines: &["BAW", "EZY", "VIR"],
    },
    Country {
        name: "France",
        block_start: 0x380000,
        block_len: 0x40000,
        airlines: &["AFR", "TVF"],
    },
    Country {
        name: "Netherlands",
        block_start: 0x480000,
        block_len: 0x8000,
        airlines: &["KLM", "TRA"],
    },
    Country {
        name: "Switzerland",
        block_start: 0x4B0000,
        block_len: 0x8000,
        airlines: &["SWR", "EDW"],
    },
    Country {
        name: "Spain",
        block_start: 0x340000,
        block_len: 0x40000,
        airlines: &["IBE", "VLG"],
    },
    Country {
        name: "Italy",
        block_start: 0x300000,
        block_len: 0x40000,
        airlines: &["ITY"],
    },
    Country {
        name: "Japan",
        block_start: 0x840000,
        block_len: 0x40000,
        airlines: &["JAL", "ANA"],
    },
    Country {
        name: "Australia",
        block_start: 0x7C0000,
        block_len: 0x40000,
        airlines: &["QFA", "VOZ"],
    },
    Country {
        name: "Canada",
        block_start: 0xC00000,
        block_len: 0x40000,
        airlines: &["ACA", "WJA"],
    },
    Country {
        name: "Brazil",
        block_start: 0xE40000,
        block_len: 0x40000,
        airlines: &["TAM", "GLO"],
    },
    Country {
        name: "United Arab Emirates",
        block_start: 0x896000,
        block_len: 0x1000,
        airlines: &["UAE", "ETD"],
    },
    Country {
        name: "Singapore",
        block_start: 0x768000,
        block_len: 0x1000,
        airlines: &["SIA"],
    },
];

/// `airport!(ICAO code, latitude, longitude, elevation m, country index)`;
/// the code is there for the reader.
macro_rules! airport {
    ($icao:literal, $lat:literal, $lon:literal, $elev:literal, $country:literal) => {
        Airport {
            lat: $lat,
            lon: $lon,
            elevation_m: $elev,
            country: $country,
        }
    };
}

pub(crate) const AIRPORTS: &[Airport] = &[
    airport!("KJFK", 40.6398, -73.7789, 4.0, 0),
    airport!("KLAX", 33.9425, -118.4081, 38.0, 0),
    airport!("KORD", 41.9786, -87.9048, 204.0, 0),
    airport!("KATL", 33.6367, -84.4281, 313.0, 0),
    airport!("KSFO", 37.6190, -122.3749, 4.0, 0),
    airport!("KSEA", 47.4490, -122.3093, 132.0, 0),
    airport!("EDDF", 50.0333, 8.5706, 111.0, 1),
    airport!("EDDM", 48.3538, 11.7861, 453.0, 1),
    airport!("EDDB", 52.3514, 13.4939, 48.0, 1),
    airport!("EGLL", 51.4775, -0.4614, 25.0, 2),
    airport!("EGKK", 51.1481, -0.1903, 62.0, 2),
    airport!("LFPG", 49.0128, 2.5500, 119.0, 3),
    airport!("LFMN", 43.6584, 7.2159, 4.0, 3),
    airport!("EHAM", 52.3086, 4.7639, -3.0, 4),
    airport!("LSZH", 47.4647, 8.5492, 432.0, 5),
    airport!("LSGG", 46.2381, 6.1090, 430.0, 5),
    airport!("LEMD", 40.4719, -3.5626, 610.0, 6),
    airport!("LEBL", 41.2971, 2.0785, 4.0, 6),
    airport!("LIRF", 41.8003, 12.2389, 5.0, 7),
    airport!("LIMC", 45.6306, 8.7281, 234.0, 7),
    airport!("RJTT", 35.5523, 139.7800, 6.0, 8),
    airport!("RJAA", 35.7647, 140.3864, 43.0, 8),
    airport!("YSSY", -33.9461, 151.1772, 6.0, 9),
    airport!("YMML", -37.6733, 144.8433, 132.0, 9),
    airport!("CYYZ", 43.6772, -79.6306, 173.0, 10),
    airport!("CYVR", 49.1939, -123.1844, 4.0, 10),
    airport!("SBGR", -23.4356, -46.4731, 750.0, 11),
    airport!("SBGL", -22.8100, -43.2506, 9.0, 11),
    airport!("OMDB", 25.2528, 55.3644, 19.0, 12),
    airport!("WSSS", 1.3502, 103.9944, 7.0, 13),
];
