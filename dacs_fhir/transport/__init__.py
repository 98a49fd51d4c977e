"""Wire framings shared by listeners (server side) and delivery (client side); no HL7 or FHIR content."""
