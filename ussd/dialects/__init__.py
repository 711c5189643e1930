"""One module per USSD gateway; each exports ``DIALECT``. Add a gateway: a module and a line."""

from ussd.dialects import africastalking, arkesel, hubtel
from ussd.gateway import Dialect

DIALECTS: tuple[Dialect, ...] = (africastalking.DIALECT, hubtel.DIALECT, arkesel.DIALECT)
